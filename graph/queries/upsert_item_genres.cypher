// Purpose: link items to their genres, creating genres on first sight.
// Parameters: $rows: list of {item_id, genre}
// Returns: nothing
UNWIND $rows AS row
MATCH (i:Item {itemId: row.item_id})
MERGE (g:Genre {name: row.genre})
MERGE (i)-[:IN_GENRE]->(g)
