// Purpose: which of the given genre names exist (onboarding refuses the others).
// Parameters: $names: list of strings
// Returns: name (each existing genre once)
UNWIND $names AS name
MATCH (g:Genre {name: name})
RETURN DISTINCT g.name AS name
