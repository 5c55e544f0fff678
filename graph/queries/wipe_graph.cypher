// Purpose: delete every node and relationship in batches (kgrec load --replace). Auto-commit only.
// Parameters: none
// Returns: nothing
MATCH (n)
CALL (n) { DETACH DELETE n } IN TRANSACTIONS OF 10000 ROWS
