// Purpose: training export of (:Person)-[:ACTED_IN|DIRECTED]->(:Item), one record per item with its people.
// Parameters: none
// Returns: item_id, person_ids (list of strings), roles (aligned list: 'actor' | 'director');
//          items without people are left out
MATCH (i:Item)
CALL (i) {
  MATCH (p:Person)-[r:ACTED_IN|DIRECTED]->(i)
  RETURN collect(p.personId) AS person_ids,
         collect(CASE type(r) WHEN 'ACTED_IN' THEN 'actor' ELSE 'director' END) AS roles
}
WITH i, person_ids, roles WHERE size(person_ids) > 0
RETURN i.itemId AS item_id, person_ids, roles
