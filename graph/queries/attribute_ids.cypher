// Purpose: which of the given attribute ids exist (onboarding refuses the others).
// Parameters: $ids: list of strings ("<kind>:<value>", e.g. "country:FR")
// Returns: id (each existing attribute once)
UNWIND $ids AS id
MATCH (a:Attribute {attributeId: id})
RETURN DISTINCT a.attributeId AS id
