// Purpose: add one item to the run-time catalogue (POST /items) with its genres, people, tags and attributes, in one
//          transaction. MERGE throughout, so a retry of the same body changes nothing; addedAt is set on creation
//          only. Without $labels the item takes the domain label most of the first 100 items carry (e.g. Movie).
// Parameters: $itemId: string; $title: string; $year: int or null; $labels: list of domain labels or null (checked
//             by schema.model.check_item_label); $genres: list of existing genre names (the caller checked them);
//             $people: list of {person_id, name, role: 'actor' | 'director'}; $tags: list of {tag, weight};
//             $attributes: list of {kind, value}; $hidden: true or null; $availableFrom, $availableUntil: int or null
//             (epoch seconds); $addedAt: int (epoch seconds)
// Returns: created (boolean: the item did not exist before)
CALL () {
  MATCH (x:Item)
  WITH x LIMIT 100
  UNWIND labels(x) AS label
  WITH label WHERE label <> 'Item'
  WITH label, count(*) AS n
  ORDER BY n DESC, label ASC
  RETURN collect(label)[0..1] AS usual
}
OPTIONAL MATCH (existing:Item {itemId: $itemId})
WITH usual, existing IS NULL AS created
MERGE (i:Item {itemId: $itemId})
  ON CREATE SET i.addedAt = $addedAt
SET i.title = $title, i.year = $year, i.hidden = $hidden, i.availableFrom = $availableFrom,
    i.availableUntil = $availableUntil, i:$(coalesce($labels, usual))
WITH i, created
CALL (i) {
  UNWIND $genres AS name
  MATCH (g:Genre {name: name})
  MERGE (i)-[:IN_GENRE]->(g)
}
CALL (i) {
  UNWIND [p IN $people WHERE p.role = 'actor'] AS p
  MERGE (q:Person {personId: p.person_id})
    ON CREATE SET q.name = p.name
  SET q:Actor
  MERGE (q)-[:ACTED_IN]->(i)
}
CALL (i) {
  UNWIND [p IN $people WHERE p.role = 'director'] AS p
  MERGE (q:Person {personId: p.person_id})
    ON CREATE SET q.name = p.name
  SET q:Director
  MERGE (q)-[:DIRECTED]->(i)
}
CALL (i) {
  UNWIND $tags AS t
  MERGE (tag:Tag {name: t.tag})
  MERGE (i)-[h:HAS_TAG]->(tag)
  SET h.weight = t.weight
}
CALL (i) {
  UNWIND $attributes AS a
  MERGE (n:Attribute {attributeId: a.kind + ':' + a.value})
    ON CREATE SET n.kind = a.kind, n.value = a.value
  MERGE (i)-[:HAS_ATTRIBUTE]->(n)
}
RETURN created
