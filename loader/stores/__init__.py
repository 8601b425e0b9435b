"""The image stores: a local folder (local.py) or a Supabase Storage bucket (supabase.py).

Both keep one object per distinct screenshot at `sha256/ab/cd/<hash>.png` and answer the same
calls; `image_store` picks the backend's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from loader.settings import Settings
from loader.stores.local import LocalStore

if TYPE_CHECKING:
    from loader.stores.supabase import SupabaseStore

    Store = LocalStore | SupabaseStore


def image_store(settings: Settings) -> Store:
    """The image store of the backend: a local folder, or a Supabase Storage bucket."""
    if settings.backend == "supabase":
        from loader.stores.supabase import SupabaseStore

        return SupabaseStore(settings.supabase_url, settings.supabase_key, settings.bucket,
                             settings.max_concurrent_uploads, settings.retries, settings.retry_delay,
                             settings.upload_timeout)
    return LocalStore(settings.image_dir, link=settings.image_link)
