// Purpose: every genre's name (the API checks the genres its recommendation filters name against them).
// Parameters: none
// Returns: name
MATCH (g:Genre)
RETURN g.name AS name
