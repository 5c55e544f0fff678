// Purpose: training export of (:User)-[:HAS_ATTRIBUTE]->(:Attribute) (age band, country, occupation, ...), one
//          record per attribute with its users.
// Parameters: none
// Returns: attribute (the attributeId, "<kind>:<value>"), user_ids (list of strings); attributes without users are
//          left out
MATCH (a:Attribute)
CALL (a) {
  MATCH (u:User)-[:HAS_ATTRIBUTE]->(a)
  RETURN collect(u.userId) AS user_ids
}
WITH a, user_ids WHERE size(user_ids) > 0
RETURN a.attributeId AS attribute, user_ids
