-- drop: the tag's dataset, if there is one.
SELECT id FROM datasets WHERE kind = 'states' AND tag = %(tag)s
