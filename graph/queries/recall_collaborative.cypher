// Purpose: collaborative recall (User→Item←User→Item): items liked by the users who share the most positives
//          with the target user, with the concrete paths that produced each candidate.
//   Seeds: the user's $maxSeeds strongest positives (rating, else weight, desc; most recent first; positive =
//          rating >= $minRating or no rating, and not negative: polarity -1).
//   Neighbours: co-raters who liked a seed, at most $maxCoRatersPerSeed per seed (those with the fewest
//          interactions first, as they weigh most in sim, then by userId) among the seed's first
//          $maxRatersScannedPerSeed raters in store order (in practice the latest written first), so a blockbuster
//          seed costs no more than a niche one;
//          sim(v) = Σ_shared seeds 1/ln(2 + deg(seed)) / sqrt(deg(v)), so sharing a blockbuster or being a heavy
//          rater counts less; the $maxNeighbours most similar are kept.
//          Candidates: up to $maxItemsPerNeighbour positives of each neighbour (highest rated, then most recent,
//          then by itemId) among its first $maxItemsScannedPerNeighbour interactions in store order;
//          score = Σ_v sim(v) · (1 + rating − $minRating, or 1 without rating) / ln(2 + deg(item)).
//          Items the user interacted with and $excludeItems are never returned; filters apply before LIMIT $k.
// History: $seedIds (the user's seeds, strongest first, as graph/recall.py's History orders them) and $seenIds (every
//          item the user interacted with) are read once per request for every strategy and given; when null, the
//          query reads them from the user's interactions itself (as pasted in the Browser).
// Parameters: $userId: string; $seedIds, $seenIds: lists of strings or null; $k: int; $minRating: float; $maxSeeds, $maxRatersScannedPerSeed,
//             $maxCoRatersPerSeed, $maxNeighbours, $maxItemsScannedPerNeighbour, $maxItemsPerNeighbour,
//             $maxPaths: int; $excludeItems, $includeGenres, $excludeGenres: padded lists of strings (off when
//             empty or led by '');
//             $yearMin, $yearMax: [int or null] (null = no bound)
//             $now: [int or null] (epoch seconds; null = the server's clock): hidden items and items outside
//             their availability window (availableFrom <= now < availableUntil) are never returned
// Returns: item_id, title, score, paths (list of {reason: 'co_interaction', nodes: [{label, id, name}],
//          rels: [{type, start, end}]}; path = user -INTERACTED-> seed <-INTERACTED- neighbour -INTERACTED-> item;
//          the strongest neighbours' paths, one per seed), ordered by score desc, item_id asc
MATCH (u:User {userId: $userId})
CALL (u) {
  // the seeds: given ($seedIds, read once per request for every strategy), or read here when null
  WITH u
  WHERE $seedIds IS NULL AND u IS NOT NULL
  MATCH (u)-[r:INTERACTED]->(s)
  WHERE (r.rating IS NULL OR r.rating >= $minRating) AND coalesce(r.polarity, 1) > 0
  WITH s, coalesce(r.rating, r.weight) AS strength, coalesce(r.timestamp, 0) AS ts
  ORDER BY strength DESC, ts DESC, s.itemId ASC
  LIMIT $maxSeeds
  RETURN collect(s) AS scanned
}
CALL () {
  WITH 1 AS one
  WHERE $seedIds IS NOT NULL
  UNWIND range(0, size($seedIds) - 1) AS rank
  MATCH (s:Item {itemId: $seedIds[rank]})
  WITH s, rank ORDER BY rank ASC
  LIMIT $maxSeeds
  RETURN collect(s) AS given
}
CALL (u) {
  // the items never returned: the user's (given as $seenIds, or read here when null) and $excludeItems
  WITH u
  WHERE $seenIds IS NULL AND u IS NOT NULL
  MATCH (u)-[:INTERACTED]->(s)
  RETURN collect(s.itemId) AS read
}
WITH u, CASE WHEN $seedIds IS NULL THEN scanned ELSE given END AS seeds,
     coalesce($seenIds, read) + $excludeItems AS excluded
CALL (u, seeds) {
  UNWIND range(0, size(seeds) - 1) AS seedRank
  WITH seedRank, seeds[seedRank] AS seed
  WITH seedRank, seed, 1.0 / log(2.0 + COUNT { (seed)<-[:INTERACTED]-() }) AS seedWeight
  CALL (u, seed) {
    CALL (seed) {
      MATCH (seed)<-[r:INTERACTED]-(v)
      RETURN r, v
      LIMIT $maxRatersScannedPerSeed
    }
    WITH r, v
    WHERE v <> u AND (r.rating IS NULL OR r.rating >= $minRating) AND coalesce(r.polarity, 1) > 0
    WITH v ORDER BY COUNT { (v)-[:INTERACTED]->() } ASC, v.userId ASC
    LIMIT $maxCoRatersPerSeed
    RETURN v
  }
  WITH v, sum(seedWeight) AS overlap, min(seedRank) AS viaSeed
  WITH v, viaSeed, overlap / sqrt(COUNT { (v)-[:INTERACTED]->() }) AS sim
  ORDER BY sim DESC, v.userId ASC
  LIMIT $maxNeighbours
  RETURN collect({user: v, sim: sim, viaSeed: viaSeed}) AS neighbours
}
WITH u, seeds, neighbours, excluded
CALL (neighbours, excluded) {
  UNWIND range(0, size(neighbours) - 1) AS rank
  WITH rank, neighbours[rank] AS nb
  CALL (nb, excluded) {
    WITH nb.user AS v
    CALL (v) {
      MATCH (v)-[r:INTERACTED]->(rec)
      RETURN r, rec
      LIMIT $maxItemsScannedPerNeighbour
    }
    WITH r, rec
    WHERE (r.rating IS NULL OR r.rating >= $minRating) AND coalesce(r.polarity, 1) > 0 AND NOT rec.itemId IN excluded
    WITH rec, coalesce(1.0 + r.rating - $minRating, 1.0) AS pref, coalesce(r.timestamp, 0) AS ts
    ORDER BY pref DESC, ts DESC, rec.itemId ASC
    LIMIT $maxItemsPerNeighbour
    RETURN rec, pref
  }
  WITH rec, sum(nb.sim * pref) AS raw, collect({c: nb.sim * pref, rank: rank}) AS contributions
  WHERE (coalesce($includeGenres[0], '') = '' OR EXISTS { (rec)-[:IN_GENRE]->(g:Genre) WHERE g.name IN $includeGenres })
    AND (coalesce($excludeGenres[0], '') = '' OR NOT EXISTS { (rec)-[:IN_GENRE]->(g:Genre) WHERE g.name IN $excludeGenres })
    AND ($yearMin[0] IS NULL OR rec.year >= $yearMin[0])
    AND ($yearMax[0] IS NULL OR rec.year <= $yearMax[0])
    AND NOT coalesce(rec.hidden, false)
    AND (rec.availableFrom IS NULL OR rec.availableFrom <= coalesce($now[0], timestamp() / 1000))
    AND (rec.availableUntil IS NULL OR rec.availableUntil > coalesce($now[0], timestamp() / 1000))
  WITH rec, contributions, raw / log(2.0 + COUNT { (rec)<-[:INTERACTED]-() }) AS score
  ORDER BY score DESC, rec.itemId ASC
  LIMIT $k
  RETURN rec, score, contributions
}
WITH u, seeds, rec, score,
     COLLECT { UNWIND contributions AS c WITH c ORDER BY c.c DESC, c.rank ASC RETURN neighbours[c.rank] } AS ranked
WITH u, seeds, rec, score,
     [i IN range(0, size(ranked) - 1)
      WHERE none(j IN range(0, i - 1) WHERE ranked[j].viaSeed = ranked[i].viaSeed) | ranked[i]][..$maxPaths] AS chosen
RETURN rec.itemId AS item_id, rec.title AS title, score,
       [nb IN chosen | {
         reason: 'co_interaction',
         nodes: [
           {label: 'User', id: u.userId, name: null},
           {label: 'Item', id: seeds[nb.viaSeed].itemId, name: seeds[nb.viaSeed].title},
           {label: 'User', id: nb.user.userId, name: null},
           {label: 'Item', id: rec.itemId, name: rec.title}],
         rels: [
           {type: 'INTERACTED', start: 0, end: 1},
           {type: 'INTERACTED', start: 2, end: 1},
           {type: 'INTERACTED', start: 2, end: 3}]
       }] AS paths
ORDER BY score DESC, item_id ASC
