// Purpose: knowledge-graph recall (User→Item→trait←Item): items that share directors, actors, tags, genres or
//          attributes (brand, category, ...) with the items the user liked, with the concrete paths that produced each candidate.
//   Seeds: the user's $maxSeeds strongest positives (as in recall_collaborative; never a negative interaction). Traits of each seed: its
//          directors, actors, genres and its $maxTagsPerSeed heaviest tags. A trait shared by `a` seeds scores
//          kindWeight · (1 + ln a) · ln(1 + itemCount / deg(trait)) (IDF-like: a genre with 4,000 items counts
//          little), kindWeight = $directorWeight | $actorWeight | $tagWeight | $genreWeight |
//          $attributeWeight. Traits linked to
//          more than $maxTraitDegree items or weighted 0 are skipped; only the $maxTraits best traits are
//          expanded, each to at most $maxItemsPerTrait items (the most rated first, then by itemId).
//          score(item) = Σ of the scores of its shared traits.
//          Items the user interacted with and $excludeItems are never returned; filters apply before LIMIT $k.
// History: $seedIds (the user's seeds, strongest first, as graph/recall.py's History orders them) and $seenIds (every
//          item the user interacted with) are read once per request for every strategy and given; when null, the
//          query reads them from the user's interactions itself (as pasted in the Browser).
// Parameters: $userId: string; $seedIds, $seenIds: lists of strings or null; $k: int; $minRating: float; $maxSeeds, $maxTagsPerSeed, $maxTraitDegree, $maxTraits,
//             $maxItemsPerTrait, $maxPaths: int; $directorWeight, $actorWeight, $tagWeight, $genreWeight, $attributeWeight: float;
//             $excludeItems, $includeGenres, $excludeGenres: padded lists of strings (off when empty or led by '');
//             $yearMin, $yearMax: [int or null] (null = no bound)
//             $now: [int or null] (epoch seconds; null = the server's clock): hidden items and items outside
//             their availability window (availableFrom <= now < availableUntil) are never returned
// Returns: item_id, title, score, paths (list of {reason: 'shared_trait', nodes: [{label, id, name}],
//          rels: [{type, start, end}]}; path = user -INTERACTED-> seed, seed and item both linked to one
//          Person (ACTED_IN | DIRECTED), Genre (IN_GENRE), Tag (HAS_TAG) or Attribute
//          (HAS_ATTRIBUTE; id = attributeId, name = value)), ordered by score desc, item_id asc
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
CALL (seeds) {
  CALL () { MATCH (i:Item) RETURN count(i) AS itemCount }
  UNWIND range(0, size(seeds) - 1) AS seedRank
  WITH itemCount, seedRank, seeds[seedRank] AS seed
  CALL (seed) {
    MATCH (seed)<-[:DIRECTED]-(t)
    RETURN t, 'DIRECTED' AS kind, $directorWeight AS kindWeight
    UNION ALL
    MATCH (seed)<-[:ACTED_IN]-(t)
    RETURN t, 'ACTED_IN' AS kind, $actorWeight AS kindWeight
    UNION ALL
    MATCH (seed)-[:IN_GENRE]->(t)
    RETURN t, 'IN_GENRE' AS kind, $genreWeight AS kindWeight
    UNION ALL
    MATCH (seed)-[h:HAS_TAG]->(t)
    WITH t, h ORDER BY h.weight DESC, t.name ASC
    LIMIT $maxTagsPerSeed
    RETURN t, 'HAS_TAG' AS kind, $tagWeight AS kindWeight
    UNION ALL
    MATCH (seed)-[:HAS_ATTRIBUTE]->(t)
    RETURN t, 'HAS_ATTRIBUTE' AS kind, $attributeWeight AS kindWeight
  }
  WITH itemCount, t, kind, kindWeight, count(*) AS affinity, min(seedRank) AS viaSeed
  WITH itemCount, t, kind, kindWeight, affinity, viaSeed,
       CASE kind
         WHEN 'IN_GENRE' THEN COUNT { (t)<-[:IN_GENRE]-() }
         WHEN 'HAS_TAG' THEN COUNT { (t)<-[:HAS_TAG]-() }
         WHEN 'HAS_ATTRIBUTE' THEN COUNT { (t)<-[:HAS_ATTRIBUTE]-(:Item) }
         ELSE COUNT { (t)-[:ACTED_IN|DIRECTED]->() }
       END AS degree
  WHERE kindWeight > 0 AND degree <= $maxTraitDegree
  WITH t, kind, viaSeed, kindWeight * (1.0 + log(affinity)) * log(1.0 + toFloat(itemCount) / degree) AS traitScore
  ORDER BY traitScore DESC, kind ASC, viaSeed ASC, coalesce(t.personId, t.name, t.attributeId) ASC
  LIMIT $maxTraits
  RETURN collect({trait: t, kind: kind, viaSeed: viaSeed, score: traitScore}) AS traits
}
WITH u, seeds, traits, excluded
CALL (traits, excluded) {
  UNWIND range(0, size(traits) - 1) AS rank
  WITH rank, traits[rank] AS tr
  CALL (tr, excluded) {
    WITH tr.trait AS t, tr.kind AS kind
    CALL (t, kind, excluded) {
      MATCH (t)-[:DIRECTED]->(rec) WHERE kind = 'DIRECTED' AND NOT rec.itemId IN excluded
      WITH rec ORDER BY COUNT { (rec)<-[:INTERACTED]-() } DESC, rec.itemId ASC LIMIT $maxItemsPerTrait
      RETURN rec
      UNION ALL
      MATCH (t)-[:ACTED_IN]->(rec) WHERE kind = 'ACTED_IN' AND NOT rec.itemId IN excluded
      WITH rec ORDER BY COUNT { (rec)<-[:INTERACTED]-() } DESC, rec.itemId ASC LIMIT $maxItemsPerTrait
      RETURN rec
      UNION ALL
      MATCH (t)<-[:IN_GENRE]-(rec) WHERE kind = 'IN_GENRE' AND NOT rec.itemId IN excluded
      WITH rec ORDER BY COUNT { (rec)<-[:INTERACTED]-() } DESC, rec.itemId ASC LIMIT $maxItemsPerTrait
      RETURN rec
      UNION ALL
      MATCH (t)<-[:HAS_TAG]-(rec) WHERE kind = 'HAS_TAG' AND NOT rec.itemId IN excluded
      WITH rec ORDER BY COUNT { (rec)<-[:INTERACTED]-() } DESC, rec.itemId ASC LIMIT $maxItemsPerTrait
      RETURN rec
      UNION ALL
      MATCH (t)<-[:HAS_ATTRIBUTE]-(rec:Item) WHERE kind = 'HAS_ATTRIBUTE' AND NOT rec.itemId IN excluded
      WITH rec ORDER BY COUNT { (rec)<-[:INTERACTED]-() } DESC, rec.itemId ASC LIMIT $maxItemsPerTrait
      RETURN rec
    }
    RETURN rec
  }
  WITH rec, sum(tr.score) AS score, collect(rank) AS contributions
  WHERE (coalesce($includeGenres[0], '') = '' OR EXISTS { (rec)-[:IN_GENRE]->(g:Genre) WHERE g.name IN $includeGenres })
    AND (coalesce($excludeGenres[0], '') = '' OR NOT EXISTS { (rec)-[:IN_GENRE]->(g:Genre) WHERE g.name IN $excludeGenres })
    AND ($yearMin[0] IS NULL OR rec.year >= $yearMin[0])
    AND ($yearMax[0] IS NULL OR rec.year <= $yearMax[0])
    AND NOT coalesce(rec.hidden, false)
    AND (rec.availableFrom IS NULL OR rec.availableFrom <= coalesce($now[0], timestamp() / 1000))
    AND (rec.availableUntil IS NULL OR rec.availableUntil > coalesce($now[0], timestamp() / 1000))
  WITH rec, score, contributions
  ORDER BY score DESC, rec.itemId ASC
  LIMIT $k
  RETURN rec, score, contributions
}
RETURN rec.itemId AS item_id, rec.title AS title, score,
       COLLECT {
         UNWIND contributions AS rank
         WITH rank ORDER BY rank ASC LIMIT $maxPaths
         WITH traits[rank] AS tr
         WITH tr, seeds[tr.viaSeed] AS seed, tr.kind IN ['ACTED_IN', 'DIRECTED'] AS byPerson
         RETURN {
           reason: 'shared_trait',
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
