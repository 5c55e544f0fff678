// Purpose: one item as the run-time catalogue sees it: POST /items compares a retried body with it, PATCH
//          /items/{id} answers with it.
// Parameters: $itemId: string
// Returns: one row when the item exists: item_id, title, year, labels (its labels besides Item), genres (names),
//          people (list of {person_id, name, role: 'actor' | 'director'}), tags (list of {tag, weight}), attributes
//          (list of {kind, value}), hidden (boolean), available_from, available_until (epoch seconds or null)
MATCH (i:Item {itemId: $itemId})
RETURN i.itemId AS item_id, i.title AS title, i.year AS year,
       [l IN labels(i) WHERE l <> 'Item'] AS labels,
       COLLECT { MATCH (i)-[:IN_GENRE]->(g:Genre) RETURN g.name } AS genres,
       COLLECT {
         MATCH (p:Person)-[r:ACTED_IN|DIRECTED]->(i)
         RETURN {person_id: p.personId, name: p.name, role: CASE type(r) WHEN 'ACTED_IN' THEN 'actor' ELSE 'director' END}
       } AS people,
       COLLECT { MATCH (i)-[h:HAS_TAG]->(t:Tag) RETURN {tag: t.name, weight: h.weight} } AS tags,
       COLLECT { MATCH (i)-[:HAS_ATTRIBUTE]->(a:Attribute) RETURN {kind: a.kind, value: a.value} } AS attributes,
       coalesce(i.hidden, false) AS hidden, i.availableFrom AS available_from, i.availableUntil AS available_until
