// Purpose: knowledge recall among given new items (added through the API, unknown to the served model): each of
//          $itemIds that shares a director, actor, genre, tag or attribute with the user's seeds, scored like
//          recall_knowledge's traits, with the concrete paths; what fills the new-arrival positions of the model
//          path without a retrain.
//   Seeds: the first $maxSeeds of $seedIds that exist (the caller passes the user's strongest positives).
//   A trait of the item shared with some seed scores kindWeight · ln(1 + itemCount / deg(trait)) (rare traits
//          weigh more), kindWeight = $directorWeight | $actorWeight | $tagWeight | $genreWeight | $attributeWeight;
//          score(item) = Σ of its shared traits. Items without a shared trait, items the user interacted with and
//          $excludeItems are never returned; the filters apply before LIMIT $k.
// Parameters: $userId: string; $itemIds, $seedIds: list of strings; $k, $maxSeeds, $maxPaths: int; $directorWeight,
//             $actorWeight, $tagWeight, $genreWeight, $attributeWeight: float; $excludeItems, $includeGenres,
//             $excludeGenres: padded lists of strings (off when empty or led by ''); $yearMin, $yearMax: [int or null]
//             (null = no bound)
//             $now: [int or null] (epoch seconds; null = the server's clock): hidden items and items outside
//             their availability window (availableFrom <= now < availableUntil) are never returned
// Returns: item_id, title, score, paths (list of {reason: 'new_arrival', nodes: [{label, id, name}],
//          rels: [{type, start, end}]}; path = user -INTERACTED-> seed, seed and item both linked to one Person,
//          Genre, Tag or Attribute, the strongest traits first), ordered by score desc, item_id asc
MATCH (u:User {userId: $userId})
WITH u,
     COLLECT {
       UNWIND range(0, size($seedIds) - 1) AS rank
       MATCH (s:Item {itemId: $seedIds[rank]})
       WITH s, rank ORDER BY rank ASC
       LIMIT $maxSeeds
       RETURN s
     } AS seeds,
     COUNT { (:Item) } AS itemCount
UNWIND $itemIds AS candidate
MATCH (rec:Item {itemId: candidate})
WHERE NOT EXISTS { (u)-[:INTERACTED]->(rec) }
  AND NOT rec.itemId IN $excludeItems
  AND (coalesce($includeGenres[0], '') = '' OR EXISTS { (rec)-[:IN_GENRE]->(g:Genre) WHERE g.name IN $includeGenres })
  AND (coalesce($excludeGenres[0], '') = '' OR NOT EXISTS { (rec)-[:IN_GENRE]->(g:Genre) WHERE g.name IN $excludeGenres })
  AND ($yearMin[0] IS NULL OR rec.year >= $yearMin[0])
  AND ($yearMax[0] IS NULL OR rec.year <= $yearMax[0])
  AND NOT coalesce(rec.hidden, false)
  AND (rec.availableFrom IS NULL OR rec.availableFrom <= coalesce($now[0], timestamp() / 1000))
  AND (rec.availableUntil IS NULL OR rec.availableUntil > coalesce($now[0], timestamp() / 1000))
CALL (rec) {
  MATCH (rec)<-[:DIRECTED]-(t)
  RETURN t, 'DIRECTED' AS kind, $directorWeight AS kindWeight, COUNT { (t)-[:ACTED_IN|DIRECTED]->() } AS degree
  UNION ALL
  MATCH (rec)<-[:ACTED_IN]-(t)
  RETURN t, 'ACTED_IN' AS kind, $actorWeight AS kindWeight, COUNT { (t)-[:ACTED_IN|DIRECTED]->() } AS degree
  UNION ALL
  MATCH (rec)-[:IN_GENRE]->(t)
  RETURN t, 'IN_GENRE' AS kind, $genreWeight AS kindWeight, COUNT { (t)<-[:IN_GENRE]-() } AS degree
  UNION ALL
  MATCH (rec)-[:HAS_TAG]->(t)
  RETURN t, 'HAS_TAG' AS kind, $tagWeight AS kindWeight, COUNT { (t)<-[:HAS_TAG]-() } AS degree
  UNION ALL
  MATCH (rec)-[:HAS_ATTRIBUTE]->(t)
  RETURN t, 'HAS_ATTRIBUTE' AS kind, $attributeWeight AS kindWeight, COUNT { (t)<-[:HAS_ATTRIBUTE]-(:Item) } AS degree
}
WITH u, seeds, itemCount, rec, t, kind, kindWeight, degree
WHERE kindWeight > 0
WITH u, seeds, itemCount, rec, t, kind, kindWeight, degree,
     COLLECT {
       UNWIND range(0, size(seeds) - 1) AS rank
       WITH rank, seeds[rank] AS s
       WHERE (kind = 'DIRECTED' AND EXISTS { (t)-[:DIRECTED]->(s) })
          OR (kind = 'ACTED_IN' AND EXISTS { (t)-[:ACTED_IN]->(s) })
          OR (kind IN ['IN_GENRE', 'HAS_TAG', 'HAS_ATTRIBUTE'] AND EXISTS { (s)-[:IN_GENRE|HAS_TAG|HAS_ATTRIBUTE]->(t) })
       RETURN rank
       LIMIT 1
     } AS via
WHERE size(via) > 0
WITH u, seeds, rec, t, kind, via[0] AS viaSeed, kindWeight * log(1.0 + toFloat(itemCount) / degree) AS traitScore
WITH u, seeds, rec, sum(traitScore) AS score,
     collect({trait: t, kind: kind, viaSeed: viaSeed, score: traitScore}) AS shared
ORDER BY score DESC, rec.itemId ASC
LIMIT $k
RETURN rec.itemId AS item_id, rec.title AS title, score,
       COLLECT {
         UNWIND shared AS tr
         WITH tr ORDER BY tr.score DESC, tr.kind ASC, tr.viaSeed ASC
         LIMIT $maxPaths
         WITH tr, seeds[tr.viaSeed] AS seed, tr.kind IN ['ACTED_IN', 'DIRECTED'] AS byPerson
         RETURN {
           reason: 'new_arrival',
           nodes: [
             {label: 'User', id: u.userId, name: null},
             {label: 'Item', id: seed.itemId, name: seed.title},
             CASE tr.kind
               WHEN 'IN_GENRE' THEN {label: 'Genre', id: tr.trait.name, name: tr.trait.name}
               WHEN 'HAS_TAG' THEN {label: 'Tag', id: tr.trait.name, name: tr.trait.name}
               WHEN 'HAS_ATTRIBUTE' THEN {label: 'Attribute', id: tr.trait.attributeId, name: tr.trait.value}
               ELSE {label: 'Person', id: tr.trait.personId, name: tr.trait.name}
             END,
             {label: 'Item', id: rec.itemId, name: rec.title}],
           rels: [
             {type: 'INTERACTED', start: 0, end: 1},
             CASE WHEN byPerson THEN {type: tr.kind, start: 2, end: 1} ELSE {type: tr.kind, start: 1, end: 2} END,
             CASE WHEN byPerson THEN {type: tr.kind, start: 2, end: 3} ELSE {type: tr.kind, start: 3, end: 2} END]
         }
       } AS paths
ORDER BY score DESC, item_id ASC
