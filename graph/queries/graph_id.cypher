// Purpose: the database's own id, fixed when its store is created (a recreated store has another): the SQLite
//          impression store records it, so that a file is never read for another graph than the one it recorded.
// Parameters: none
// Returns: id
CALL db.info() YIELD id
RETURN id
