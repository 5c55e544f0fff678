// Purpose: the graph facts that explain items chosen by a ranker, in one round trip: which of $itemIds exist and pass
//          the filters (with their titles), the user's seeds, and the neighbourhoods from which graph/explain.py joins
//          and ranks up to $maxPaths concrete paths from the user to each item. The query only reads; joining the seed
//          side with the item side, ranking the paths and building them (nodes, relationships, sentences) happens in
//          Python. A neighbourhood read here depends on its node only, never on the user, so the caller may keep it
//          and leave its node out of $readSeeds / $readItems next time.
//   Seeds: the user's $maxSeeds strongest positives (as in recall_collaborative; positive = rating >= $minRating or no
//          rating, never a negative interaction: polarity -1), or, when $seedIds is a list, the first $maxSeeds of those
//          that are positives of the user (the caller chose them, e.g. from user_context: this skips reading all of a
//          heavy user's interactions); with $checkSeeds false, those that exist, unchecked (the caller has just read
//          them as the user's positives). With $maxPaths = 0 nothing but the items is read.
//   Seed side (of the seeds in $readSeeds; null = of every seed): its first $maxCoRatersPerSeed + 1 positive raters in
//          store order (the user among them is dropped by the caller, who keeps the first $maxCoRatersPerSeed others);
//          its traits: Person (DIRECTED or ACTED_IN), the $maxTagsPerSeed heaviest tags (then by name), Attribute
//          (HAS_ATTRIBUTE), Genre.
//   Item side (of the surviving items in $readItems; null = of every one): the raters with a positive on it among its
//          first $maxRatersPerItem raters in store order; its traits: Person, its first $maxTagsPerItem tags in store
//          order, Attribute, Genre, each with its degree (items linked to it that way).
//   User side: the user's first $maxFollowees followees by userId and their FOLLOWS degree; the followee side (of the
//          followees not in $heldFollowees): the followee's first $maxItemsPerFollowee positives in
//          store order, which depend on the followee only, so the caller may keep them as it keeps the seed and item
//          sides (graph/explain.py intersects them with the items); the genres the user prefers.
//   An unknown user gets every surviving item and no seeds. Items the user interacted with are not filtered out.
// Parameters: $userId: string; $itemIds: list of strings; $seedIds: list of strings or null; $checkSeeds: boolean;
//             $readSeeds, $readItems:
//             list of strings or null; $minRating: float; $maxPaths, $maxSeeds, $maxCoRatersPerSeed,
//             $maxRatersPerItem, $maxTagsPerSeed, $maxTagsPerItem, $maxFollowees, $maxItemsPerFollowee: int;
//             $excludeItems, $includeGenres, $excludeGenres: padded lists of strings (off when empty or led by '');
//             $yearMin, $yearMax: [int or null] (null = no bound); $heldFollowees: list of user ids whose followee
//             side the caller holds
//             $now: [int or null] (epoch seconds; null = the server's clock): hidden items and items outside
//             their availability window (availableFrom <= now < availableUntil) are never returned
// Returns: one row. items: [[item_id, title]] of the surviving items; seeds: [[item_id, title]], strongest first;
//          seed_sides: [[item_id, [rater user_id …], [[type, key] …]]]; item_sides: [[item_id, [rater user_id …],
//          [[type, key, name, degree] …]]] (type: ACTED_IN, DIRECTED, HAS_TAG, HAS_ATTRIBUTE or IN_GENRE; key:
//          personId, the tag's or genre's name, or attributeId; name: the person's name, the tag's or genre's name,
//          or the attribute's value); followees: [user_id] (by userId); followee_sides: [[user_id, [item_id …]]];
//          follows: the user's FOLLOWS degree (0 for an unknown user); preferred: [genre name]
MATCH (i:Item)
WHERE i.itemId IN $itemIds
  AND NOT i.itemId IN $excludeItems
  AND (coalesce($includeGenres[0], '') = '' OR EXISTS { (i)-[:IN_GENRE]->(g:Genre) WHERE g.name IN $includeGenres })
  AND (coalesce($excludeGenres[0], '') = '' OR NOT EXISTS { (i)-[:IN_GENRE]->(g:Genre) WHERE g.name IN $excludeGenres })
  AND ($yearMin[0] IS NULL OR i.year >= $yearMin[0])
  AND ($yearMax[0] IS NULL OR i.year <= $yearMax[0])
  AND NOT coalesce(i.hidden, false)
  AND (i.availableFrom IS NULL OR i.availableFrom <= coalesce($now[0], timestamp() / 1000))
  AND (i.availableUntil IS NULL OR i.availableUntil > coalesce($now[0], timestamp() / 1000))
WITH collect(i) AS items
OPTIONAL MATCH (u:User {userId: $userId})
WHERE $maxPaths > 0 AND size(items) > 0
CALL (u) {
  WITH u
  WHERE $seedIds IS NULL AND u IS NOT NULL
  MATCH (u)-[r:INTERACTED]->(s)
  WHERE (r.rating IS NULL OR r.rating >= $minRating) AND coalesce(r.polarity, 1) > 0
  WITH s, coalesce(r.rating, r.weight) AS strength, coalesce(r.timestamp, 0) AS ts
  ORDER BY strength DESC, ts DESC, s.itemId ASC
  LIMIT $maxSeeds
  RETURN collect(s) AS scanned
}
CALL (u) {
  WITH u
  WHERE $seedIds IS NOT NULL AND u IS NOT NULL
  UNWIND range(0, size($seedIds) - 1) AS rank
  MATCH (s:Item {itemId: $seedIds[rank]})
  WHERE NOT $checkSeeds
     OR EXISTS { (u)-[r:INTERACTED]->(s) WHERE (r.rating IS NULL OR r.rating >= $minRating) AND coalesce(r.polarity, 1) > 0 }
  WITH s, min(rank) AS rank
  ORDER BY rank ASC
  LIMIT $maxSeeds
  RETURN collect(s) AS given
}
WITH items, u, CASE WHEN $seedIds IS NULL THEN scanned ELSE given END AS seeds
CALL (seeds) {
  UNWIND seeds AS s
  WITH s
  WHERE $readSeeds IS NULL OR s.itemId IN $readSeeds
  RETURN collect([
    s.itemId,
    COLLECT {
      MATCH (s)<-[r:INTERACTED]-(v)
      WHERE coalesce(r.rating >= $minRating, true) AND coalesce(r.polarity, 1) > 0
      RETURN v.userId
      LIMIT $maxCoRatersPerSeed + 1
    },
    COLLECT {
      MATCH (s)<-[p:DIRECTED|ACTED_IN]-(t)
      RETURN [type(p), t.personId] AS trait
      UNION ALL
      MATCH (s)-[:IN_GENRE]->(t)
      RETURN ['IN_GENRE', t.name] AS trait
      UNION ALL
      MATCH (s)-[h:HAS_TAG]->(t)
      WITH t, h ORDER BY h.weight DESC, t.name ASC
      LIMIT $maxTagsPerSeed
      RETURN ['HAS_TAG', t.name] AS trait
      UNION ALL
      MATCH (s)-[:HAS_ATTRIBUTE]->(t)
      RETURN ['HAS_ATTRIBUTE', t.attributeId] AS trait
    }]) AS seedSides
}
CALL (u, items) {
  UNWIND items AS item
  WITH item
  WHERE u IS NOT NULL AND ($readItems IS NULL OR item.itemId IN $readItems)
  RETURN collect([
    item.itemId,
    COLLECT {
      MATCH (item)<-[r:INTERACTED]-(v)
      WITH v, r
      LIMIT $maxRatersPerItem
      WITH v, r
      WHERE coalesce(r.rating >= $minRating, true) AND coalesce(r.polarity, 1) > 0
      RETURN v.userId
    },
    COLLECT {
      MATCH (item)<-[p:DIRECTED|ACTED_IN]-(t)
      RETURN [type(p), t.personId, t.name,
              CASE type(p) WHEN 'DIRECTED' THEN COUNT { (t)-[:DIRECTED]->() } ELSE COUNT { (t)-[:ACTED_IN]->() } END] AS trait
      UNION ALL
      MATCH (item)-[:IN_GENRE]->(t)
      RETURN ['IN_GENRE', t.name, t.name, COUNT { (t)<-[:IN_GENRE]-() }] AS trait
      UNION ALL
      MATCH (item)-[:HAS_TAG]->(t)
      WITH t
      LIMIT $maxTagsPerItem
      RETURN ['HAS_TAG', t.name, t.name, COUNT { (t)<-[:HAS_TAG]-() }] AS trait
      UNION ALL
      MATCH (item)-[:HAS_ATTRIBUTE]->(t)
      RETURN ['HAS_ATTRIBUTE', t.attributeId, t.value, COUNT { (t)<-[:HAS_ATTRIBUTE]-(:Item) }] AS trait
    }]) AS itemSides
}
CALL (u) {
  MATCH (u)-[:FOLLOWS]->(f:User)
  WITH f ORDER BY f.userId ASC
  LIMIT $maxFollowees
  WITH f, NOT f.userId IN $heldFollowees AS read
  CALL (f, read) {
    WITH f, read WHERE read
    MATCH (f)-[r:INTERACTED]->(x)
    WHERE (r.rating IS NULL OR r.rating >= $minRating) AND coalesce(r.polarity, 1) > 0
    WITH x
    LIMIT $maxItemsPerFollowee
    RETURN collect(x.itemId) AS liked
  }
  RETURN collect(f.userId) AS followees, collect(CASE WHEN read THEN [f.userId, liked] END) AS followeeSides
}
RETURN [i IN items | [i.itemId, i.title]] AS items,
       [s IN seeds | [s.itemId, s.title]] AS seeds,
       seedSides AS seed_sides,
       itemSides AS item_sides,
       followees,
       followeeSides AS followee_sides,
       CASE WHEN u IS NULL THEN 0 ELSE COUNT { (u)-[:FOLLOWS]->() } END AS follows,
       COLLECT { MATCH (u)-[:PREFERS]->(g:Genre) RETURN g.name } AS preferred
