// Purpose: explain items chosen by a ranker: for each of $itemIds that exists and passes the filters, its title and up
//          to $maxPaths concrete paths from the user to it. Items without any path come back with an empty list.
//   Seeds: the user's $maxSeeds strongest positives (as in recall_collaborative; positive = rating >= $minRating or no
//          rating, never a negative interaction: polarity -1), or, when $seedIds is a list, the first $maxSeeds of those that are positives of the user (the
//          caller chose them, e.g. from user_context: this skips reading all of a heavy user's interactions). Each path kind joins a bounded set read from the user's side with a bounded set read from the
//          items' side on the node in between (an aggregation on that node, i.e. a hash join), so no per-item search
//          expands the user's neighbourhood. A seed is never used to explain itself.
//   co_interaction (kind 0): user -> seed <- v -> item, v among the first $maxCoRatersPerSeed positive co-raters of a
//          seed (store order) and among the first $maxRatersPerItem raters of the item (store order) with a positive
//          on it. One path per seed, strongest seeds first; for a seed, the v who shares the most seeds, then userId.
//   shared_trait (kind 1): user -> seed, seed and item both linked to one Person (same DIRECTED or ACTED_IN on both
//          sides), Tag (the seed's $maxTagsPerSeed heaviest, the item's first $maxTagsPerItem in store order),
//          Attribute (HAS_ATTRIBUTE: brand, category, ...) or Genre; people before tags and attributes before genres, then the rarest (fewest items), then the strongest seed, type, key.
//   followee (kind 2): user -FOLLOWS-> f -> item, f among the user's first $maxFollowees followees by userId and the
//          item among f's first $maxItemsPerFollowee positives (store order); by userId.
//   preferred_genre (kind 3): user -PREFERS-> genre <-IN_GENRE- item; rarest genre first, then name.
//   Paths are taken round-robin: the best path of each kind (in kind order), then the second best of each kind, ...,
//   up to $maxPaths. An unknown user gets every surviving item without paths. Items the user interacted with are not
//   filtered out.
// Parameters: $userId: string; $itemIds: list of strings; $seedIds: list of strings or null; $minRating: float; $maxPaths, $maxSeeds,
//             $maxCoRatersPerSeed, $maxRatersPerItem, $maxTagsPerSeed, $maxTagsPerItem, $maxFollowees,
//             $maxItemsPerFollowee: int; $excludeItems, $includeGenres, $excludeGenres: list of strings
//             (empty = no filter); $yearMin, $yearMax: int or null (null = no bound)
//             $now: int or null (epoch seconds; null = the server's clock): hidden items and items outside
//             their availability window (availableFrom <= now < availableUntil) are never returned
// Returns: item_id, title, paths (list of {reason: 'co_interaction' | 'shared_trait' | 'followee' | 'preferred_genre',
//          nodes: [{label, id, name}], rels: [{type, start, end}]}, best first), ordered by item_id
MATCH (i:Item)
WHERE i.itemId IN $itemIds
  AND NOT i.itemId IN $excludeItems
  AND (size($includeGenres) = 0 OR EXISTS { (i)-[:IN_GENRE]->(g:Genre) WHERE g.name IN $includeGenres })
  AND (size($excludeGenres) = 0 OR NOT EXISTS { (i)-[:IN_GENRE]->(g:Genre) WHERE g.name IN $excludeGenres })
  AND ($yearMin IS NULL OR i.year >= $yearMin)
  AND ($yearMax IS NULL OR i.year <= $yearMax)
  AND NOT coalesce(i.hidden, false)
  AND (i.availableFrom IS NULL OR i.availableFrom <= coalesce($now, timestamp() / 1000))
  AND (i.availableUntil IS NULL OR i.availableUntil > coalesce($now, timestamp() / 1000))
WITH collect(i) AS items
OPTIONAL MATCH (u:User {userId: $userId})
CALL (u) {
  WITH u
  WHERE $seedIds IS NULL
  MATCH (u)-[r:INTERACTED]->(s)
  WHERE (r.rating IS NULL OR r.rating >= $minRating) AND coalesce(r.polarity, 1) > 0
  WITH s, coalesce(r.rating, r.weight) AS strength, coalesce(r.timestamp, 0) AS ts
  ORDER BY strength DESC, ts DESC, s.itemId ASC
  LIMIT $maxSeeds
  RETURN collect(s) AS scanned
}
CALL (u) {
  WITH u
  WHERE $seedIds IS NOT NULL
  UNWIND range(0, size($seedIds) - 1) AS rank
  MATCH (s:Item {itemId: $seedIds[rank]})
  WHERE EXISTS { (u)-[r:INTERACTED]->(s) WHERE (r.rating IS NULL OR r.rating >= $minRating) AND coalesce(r.polarity, 1) > 0 }
  WITH s, min(rank) AS rank
  ORDER BY rank ASC
  LIMIT $maxSeeds
  RETURN collect(s) AS given
}
WITH items, u, CASE WHEN $seedIds IS NULL THEN scanned ELSE given END AS seeds
CALL (u, items, seeds) {
  // co_interaction
  CALL (u, items, seeds) {
    UNWIND range(0, size(seeds) - 1) AS via
    WITH via, seeds[via] AS s
    CALL (u, s) {
      MATCH (s)<-[r:INTERACTED]-(v)
      WHERE v <> u AND coalesce(r.rating >= $minRating, true) AND coalesce(r.polarity, 1) > 0
      RETURN v
      LIMIT $maxCoRatersPerSeed
    }
    RETURN v, via, null AS rated
    UNION ALL
    UNWIND items AS item
    CALL (item) {
      MATCH (item)<-[r:INTERACTED]-(v)
      RETURN v, r
      LIMIT $maxRatersPerItem
    }
    RETURN v, null AS via, [item, r] AS rated
  }
  WITH v, min(via) AS via, collect(via) AS vias, collect(rated) AS rated
  WHERE via IS NOT NULL AND size(rated) > 0
  UNWIND rated AS ir
  WITH ir[0] AS i, ir[1] AS r, v, size(vias) AS overlap,
       CASE WHEN seeds[via] <> ir[0] THEN via
            ELSE reduce(b = -1, x IN vias | CASE WHEN seeds[x] <> ir[0] AND (b < 0 OR x < b) THEN x ELSE b END)
       END AS via
  WHERE via >= 0 AND coalesce(r.rating >= $minRating, true) AND coalesce(r.polarity, 1) > 0
  WITH i, collect({via: via, overlap: overlap, v: v}) AS matches
  WITH i, matches, COLLECT { UNWIND matches AS m RETURN DISTINCT m.via AS via ORDER BY via ASC LIMIT $maxPaths } AS vias
  UNWIND range(0, size(vias) - 1) AS rank
  WITH i, rank, vias[rank] AS via, [m IN matches WHERE m.via = vias[rank]] AS viaMatches
  WITH i, rank, via, viaMatches, reduce(o = 0, m IN viaMatches | CASE WHEN m.overlap > o THEN m.overlap ELSE o END) AS most
  WITH i, rank, seeds[via] AS s,
       COLLECT { UNWIND viaMatches AS m WITH m.v AS v WHERE m.overlap = most RETURN v ORDER BY v.userId ASC LIMIT 1 }[0] AS v
  RETURN i, 0 AS kind, rank, {
    reason: 'co_interaction',
    nodes: [
      {label: 'User', id: u.userId, name: null},
      {label: 'Item', id: s.itemId, name: s.title},
      {label: 'User', id: v.userId, name: null},
      {label: 'Item', id: i.itemId, name: i.title}],
    rels: [
      {type: 'INTERACTED', start: 0, end: 1},
      {type: 'INTERACTED', start: 2, end: 1},
      {type: 'INTERACTED', start: 2, end: 3}]
  } AS path
  UNION ALL
  // shared_trait
  CALL (items, seeds) {
    UNWIND range(0, size(seeds) - 1) AS via
    WITH via, seeds[via] AS s
    CALL (s) {
      MATCH (s)<-[p:DIRECTED|ACTED_IN]-(t)
      RETURN t, type(p) AS type
      UNION ALL
      MATCH (s)-[:IN_GENRE]->(t)
      RETURN t, 'IN_GENRE' AS type
      UNION ALL
      MATCH (s)-[h:HAS_TAG]->(t)
      WITH t, h ORDER BY h.weight DESC, t.name ASC
      LIMIT $maxTagsPerSeed
      RETURN t, 'HAS_TAG' AS type
      UNION ALL
      MATCH (s)-[:HAS_ATTRIBUTE]->(t)
      RETURN t, 'HAS_ATTRIBUTE' AS type
    }
    RETURN t, type, via, null AS item
    UNION ALL
    UNWIND items AS item
    CALL (item) {
      MATCH (item)<-[p:DIRECTED|ACTED_IN]-(t)
      RETURN t, type(p) AS type
      UNION ALL
      MATCH (item)-[:IN_GENRE]->(t)
      RETURN t, 'IN_GENRE' AS type
      UNION ALL
      MATCH (item)-[:HAS_TAG]->(t)
      RETURN t, 'HAS_TAG' AS type
      LIMIT $maxTagsPerItem
      UNION ALL
      MATCH (item)-[:HAS_ATTRIBUTE]->(t)
      RETURN t, 'HAS_ATTRIBUTE' AS type
    }
    RETURN t, type, null AS via, item
  }
  WITH t, type, min(via) AS via, collect(via) AS vias, collect(item) AS sharing
  WHERE via IS NOT NULL AND size(sharing) > 0
  WITH t, type, via, vias, sharing,
       CASE type
         WHEN 'IN_GENRE' THEN COUNT { (t)<-[:IN_GENRE]-() }
         WHEN 'HAS_TAG' THEN COUNT { (t)<-[:HAS_TAG]-() }
         WHEN 'HAS_ATTRIBUTE' THEN COUNT { (t)<-[:HAS_ATTRIBUTE]-(:Item) }
         WHEN 'DIRECTED' THEN COUNT { (t)-[:DIRECTED]->() }
         ELSE COUNT { (t)-[:ACTED_IN]->() }
       END AS degree
  UNWIND sharing AS i
  WITH i, t, type, degree,
       CASE WHEN seeds[via] <> i THEN via
            ELSE reduce(b = -1, x IN vias | CASE WHEN seeds[x] <> i AND (b < 0 OR x < b) THEN x ELSE b END)
       END AS via
  WHERE via >= 0
  WITH i, collect({t: t, type: type, degree: degree, via: via,
                   rank: CASE type WHEN 'IN_GENRE' THEN 2 WHEN 'HAS_TAG' THEN 1 WHEN 'HAS_ATTRIBUTE' THEN 1 ELSE 0 END}) AS options
  WITH i, COLLECT {
    UNWIND options AS o
    WITH o ORDER BY o.rank ASC, o.degree ASC, o.via ASC, o.type ASC, coalesce(o.t.personId, o.t.name, o.t.attributeId) ASC
    LIMIT $maxPaths
    RETURN o
  } AS chosen
  UNWIND range(0, size(chosen) - 1) AS rank
  WITH i, rank, chosen[rank] AS o, seeds[chosen[rank].via] AS s
  RETURN i, 1 AS kind, rank, {
    reason: 'shared_trait',
    nodes: [
      {label: 'User', id: u.userId, name: null},
      {label: 'Item', id: s.itemId, name: s.title},
      CASE o.type
        WHEN 'IN_GENRE' THEN {label: 'Genre', id: o.t.name, name: o.t.name}
        WHEN 'HAS_TAG' THEN {label: 'Tag', id: o.t.name, name: o.t.name}
        WHEN 'HAS_ATTRIBUTE' THEN {label: 'Attribute', id: o.t.attributeId, name: o.t.value}
        ELSE {label: 'Person', id: o.t.personId, name: o.t.name}
      END,
      {label: 'Item', id: i.itemId, name: i.title}],
    rels: [
      {type: 'INTERACTED', start: 0, end: 1},
      CASE WHEN o.type IN ['ACTED_IN', 'DIRECTED'] THEN {type: o.type, start: 2, end: 1} ELSE {type: o.type, start: 1, end: 2} END,
      CASE WHEN o.type IN ['ACTED_IN', 'DIRECTED'] THEN {type: o.type, start: 2, end: 3} ELSE {type: o.type, start: 3, end: 2} END]
  } AS path
  UNION ALL
  // followee
  MATCH (u)-[:FOLLOWS]->(f:User)
  WITH u, items, f ORDER BY f.userId ASC
  LIMIT $maxFollowees
  CALL (f) {
    MATCH (f)-[r:INTERACTED]->(x)
    WHERE (r.rating IS NULL OR r.rating >= $minRating) AND coalesce(r.polarity, 1) > 0
    RETURN x
    LIMIT $maxItemsPerFollowee
  }
  WITH u, f, x AS i
  WHERE i IN items
  WITH u, i, collect(f) AS followees
  WITH u, i, COLLECT { UNWIND followees AS f WITH f ORDER BY f.userId ASC LIMIT $maxPaths RETURN f } AS chosen
  UNWIND range(0, size(chosen) - 1) AS rank
  WITH u, i, rank, chosen[rank] AS f
  RETURN i, 2 AS kind, rank, {
    reason: 'followee',
    nodes: [
      {label: 'User', id: u.userId, name: null},
      {label: 'User', id: f.userId, name: null},
      {label: 'Item', id: i.itemId, name: i.title}],
    rels: [
      {type: 'FOLLOWS', start: 0, end: 1},
      {type: 'INTERACTED', start: 1, end: 2}]
  } AS path
  UNION ALL
  // preferred_genre
  MATCH (u)-[:PREFERS]->(g:Genre)
  WITH u, items, collect(g) AS preferred
  UNWIND items AS i
  MATCH (i)-[:IN_GENRE]->(g)
  WHERE g IN preferred
  WITH u, i, g, COUNT { (g)<-[:IN_GENRE]-() } AS degree
  WITH u, i, COLLECT { WITH g, degree ORDER BY degree ASC, g.name ASC LIMIT $maxPaths RETURN g } AS chosen
  UNWIND range(0, size(chosen) - 1) AS rank
  WITH u, i, rank, chosen[rank] AS g
  RETURN i, 3 AS kind, rank, {
    reason: 'preferred_genre',
    nodes: [
      {label: 'User', id: u.userId, name: null},
      {label: 'Genre', id: g.name, name: g.name},
      {label: 'Item', id: i.itemId, name: i.title}],
    rels: [
      {type: 'PREFERS', start: 0, end: 1},
      {type: 'IN_GENRE', start: 2, end: 1}]
  } AS path
  UNION ALL
  // every surviving item, with or without paths
  UNWIND items AS i
  RETURN i, -1 AS kind, -1 AS rank, null AS path
}
WITH i, collect({kind: kind, rank: rank, path: path}) AS options
RETURN i.itemId AS item_id, i.title AS title,
       COLLECT {
         UNWIND options AS o
         WITH o WHERE o.path IS NOT NULL
         WITH o ORDER BY o.rank ASC, o.kind ASC
         LIMIT $maxPaths
         RETURN o.path
       } AS paths
ORDER BY item_id ASC
