// Purpose: whether an item with this id exists (callers decide 404s).
// Parameters: $itemId: string
// Returns: exists (boolean)
RETURN EXISTS { MATCH (:Item {itemId: $itemId}) } AS exists
