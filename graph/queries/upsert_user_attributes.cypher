// Purpose: link users to their attributes (age band, country, occupation, ...), creating users and attributes on
//          first sight (user attributes may be written before the users file is read to the end).
// Parameters: $rows: list of {owner_id (user id), kind, value}
// Returns: nothing
UNWIND $rows AS row
MERGE (u:User {userId: row.owner_id})
MERGE (a:Attribute {attributeId: row.kind + ':' + row.value})
  ON CREATE SET a.kind = row.kind, a.value = row.value
MERGE (u)-[:HAS_ATTRIBUTE]->(a)
