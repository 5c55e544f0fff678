// Purpose: items similar to one item (item page), from shared users and shared traits, with the concrete paths.
//   Co-interaction: up to $maxCoRaters users with a positive on the item (those with the fewest interactions
//          first, as they weigh most, then by userId; positive = rating >= $minRating or no rating), each weighted
//          1/ln(2 + deg(user)) and contributing up to $maxItemsPerUser of their positives (strongest, then most
//          recent, then by itemId); co(item) = Σ weights / sqrt(deg(item)) · n / (n + $coShrinkage), n = how
//          many of those users liked it (shrinks items that a single co-rater happens to like).
//   Traits: the item's directors, actors, genres and $maxItemTags heaviest tags linked to at most
//          $maxTraitDegree items, each worth kindWeight · ln(1 + itemCount / deg(trait)) and expanded to
//          $maxItemsPerTrait items (the most rated first, then by itemId); traits(item) = Σ of its shared traits.
//   score = $coWeight · co / max(co) + $traitWeight · traits / max(traits) (each part scaled to [0, 1]; a part
//          weighted 0 is not computed). The item itself and $excludeItems are never returned; filters apply
//          before LIMIT $k.
// Parameters: $itemId: string; $k, $maxCoRaters, $maxItemsPerUser, $maxItemTags, $maxTraitDegree,
//             $maxItemsPerTrait, $maxPaths: int; $minRating, $coShrinkage, $coWeight, $traitWeight, $directorWeight,
//             $actorWeight, $tagWeight, $genreWeight: float; $excludeItems, $includeGenres, $excludeGenres: padded
//             lists of strings (off when empty or led by ''); $yearMin, $yearMax: [int or null] (null = no bound)
//             $now: [int or null] (epoch seconds; null = the server's clock): hidden items and items outside
//             their availability window (availableFrom <= now < availableUntil) are never returned
// Returns: item_id, title, score, paths (list of {reason: 'similar_co_interaction' | 'similar_trait', nodes, rels};
//          path = item <-INTERACTED- user -INTERACTED-> similar item (the strongest such user only), or item and
//          similar item both linked to one Person, Genre or Tag), ordered by score desc, item_id asc
MATCH (src:Item {itemId: $itemId})
CALL (src) {
  MATCH (src)<-[r:INTERACTED]-(v)
  WHERE $coWeight > 0 AND (r.rating IS NULL OR r.rating >= $minRating) AND coalesce(r.polarity, 1) > 0
  WITH v, COUNT { (v)-[:INTERACTED]->() } AS degree
  ORDER BY degree ASC, v.userId ASC
  LIMIT $maxCoRaters
  WITH v, 1.0 / log(2.0 + degree) AS weight
  ORDER BY weight DESC, v.userId ASC
  RETURN collect({user: v, weight: weight}) AS raters
}
CALL (src) {
  WITH src
  WHERE $traitWeight > 0
  CALL () { MATCH (i:Item) RETURN count(i) AS itemCount }
  CALL (src) {
    MATCH (src)<-[:DIRECTED]-(t)
    RETURN t, 'DIRECTED' AS kind, $directorWeight AS kindWeight
    UNION ALL
    MATCH (src)<-[:ACTED_IN]-(t)
    RETURN t, 'ACTED_IN' AS kind, $actorWeight AS kindWeight
    UNION ALL
    MATCH (src)-[:IN_GENRE]->(t)
    RETURN t, 'IN_GENRE' AS kind, $genreWeight AS kindWeight
    UNION ALL
    MATCH (src)-[h:HAS_TAG]->(t)
    WITH t, h ORDER BY h.weight DESC, t.name ASC
    LIMIT $maxItemTags
    RETURN t, 'HAS_TAG' AS kind, $tagWeight AS kindWeight
  }
  WITH itemCount, t, kind, kindWeight,
       CASE kind
         WHEN 'IN_GENRE' THEN COUNT { (t)<-[:IN_GENRE]-() }
         WHEN 'HAS_TAG' THEN COUNT { (t)<-[:HAS_TAG]-() }
         ELSE COUNT { (t)-[:ACTED_IN|DIRECTED]->() }
       END AS degree
  WHERE kindWeight > 0 AND degree <= $maxTraitDegree
  WITH t, kind, kindWeight * log(1.0 + toFloat(itemCount) / degree) AS traitScore
  ORDER BY traitScore DESC, kind ASC, coalesce(t.personId, t.name) ASC
  RETURN collect({trait: t, kind: kind, score: traitScore}) AS traits
}
WITH src, raters, traits, [src] + COLLECT { MATCH (x:Item) WHERE x.itemId IN $excludeItems RETURN x } AS excluded
CALL (raters, excluded) {
  UNWIND range(0, size(raters) - 1) AS rank
  WITH rank, raters[rank] AS rater
  CALL (rater, excluded) {
    WITH rater.user AS v
    MATCH (v)-[r:INTERACTED]->(rec)
    WHERE (r.rating IS NULL OR r.rating >= $minRating) AND coalesce(r.polarity, 1) > 0 AND NOT rec IN excluded
    WITH rec ORDER BY coalesce(r.rating, r.weight, 0) DESC, coalesce(r.timestamp, 0) DESC, rec.itemId ASC
    LIMIT $maxItemsPerUser
    RETURN rec
  }
  WITH rec, sum(rater.weight) AS raw, count(*) AS support, min(rank) AS best
  WITH rec, raw, best, raw / sqrt(COUNT { (rec)<-[:INTERACTED]-() }) * support / (support + $coShrinkage) AS score
  RETURN collect({rec: rec, raw: raw, score: score, best: best}) AS co
}
CALL (traits, excluded) {
  UNWIND range(0, size(traits) - 1) AS rank
  WITH rank, traits[rank] AS tr
  CALL (tr, excluded) {
    WITH tr.trait AS t, tr.kind AS kind
    CALL (t, kind, excluded) {
      MATCH (t)-[:DIRECTED]->(rec) WHERE kind = 'DIRECTED' AND NOT rec IN excluded
      WITH rec ORDER BY COUNT { (rec)<-[:INTERACTED]-() } DESC, rec.itemId ASC LIMIT $maxItemsPerTrait
      RETURN rec
      UNION ALL
      MATCH (t)-[:ACTED_IN]->(rec) WHERE kind = 'ACTED_IN' AND NOT rec IN excluded
      WITH rec ORDER BY COUNT { (rec)<-[:INTERACTED]-() } DESC, rec.itemId ASC LIMIT $maxItemsPerTrait
      RETURN rec
      UNION ALL
      MATCH (t)<-[:IN_GENRE]-(rec) WHERE kind = 'IN_GENRE' AND NOT rec IN excluded
      WITH rec ORDER BY COUNT { (rec)<-[:INTERACTED]-() } DESC, rec.itemId ASC LIMIT $maxItemsPerTrait
      RETURN rec
      UNION ALL
      MATCH (t)<-[:HAS_TAG]-(rec) WHERE kind = 'HAS_TAG' AND NOT rec IN excluded
      WITH rec ORDER BY COUNT { (rec)<-[:INTERACTED]-() } DESC, rec.itemId ASC LIMIT $maxItemsPerTrait
      RETURN rec
    }
    RETURN rec
  }
  WITH rec, sum(tr.score) AS score, collect(rank) AS ranks
  RETURN collect({rec: rec, score: score, ranks: ranks}) AS kg
}
WITH src, raters, traits, co, kg,
     reduce(m = 0.0, c IN co | CASE WHEN c.score > m THEN c.score ELSE m END) AS coMax,
     reduce(m = 0.0, c IN kg | CASE WHEN c.score > m THEN c.score ELSE m END) AS kgMax
CALL (co, kg, coMax, kgMax) {
  UNWIND [c IN co WHERE coMax > 0 | {rec: c.rec, s: $coWeight * c.score / coMax, co: c}]
       + [c IN kg WHERE kgMax > 0 | {rec: c.rec, s: $traitWeight * c.score / kgMax, kg: c}] AS c
  WITH c.rec AS rec, sum(c.s) AS score, collect(c.co)[0] AS coPart, collect(c.kg)[0] AS kgPart
  WHERE (coalesce($includeGenres[0], '') = '' OR EXISTS { (rec)-[:IN_GENRE]->(g:Genre) WHERE g.name IN $includeGenres })
    AND (coalesce($excludeGenres[0], '') = '' OR NOT EXISTS { (rec)-[:IN_GENRE]->(g:Genre) WHERE g.name IN $excludeGenres })
    AND ($yearMin[0] IS NULL OR rec.year >= $yearMin[0])
    AND ($yearMax[0] IS NULL OR rec.year <= $yearMax[0])
    AND NOT coalesce(rec.hidden, false)
    AND (rec.availableFrom IS NULL OR rec.availableFrom <= coalesce($now[0], timestamp() / 1000))
    AND (rec.availableUntil IS NULL OR rec.availableUntil > coalesce($now[0], timestamp() / 1000))
  WITH rec, score, coPart, kgPart
  ORDER BY score DESC, rec.itemId ASC
  LIMIT $k
  RETURN rec, score, coPart, kgPart
}
WITH src, raters, traits, rec, score,
     CASE WHEN coPart IS NULL THEN [] ELSE
       [{weight: $coWeight * coPart.score * raters[coPart.best].weight / coPart.raw / coMax,
         part: 0, rank: coPart.best}]
     END
     + [rank IN coalesce(kgPart.ranks, []) | {weight: $traitWeight * traits[rank].score / kgMax, part: 1, rank: rank}]
     AS options
WITH src, raters, traits, rec, score,
     COLLECT {
       UNWIND options AS o
       WITH o ORDER BY o.weight DESC, o.part ASC, o.rank ASC
       LIMIT $maxPaths
       RETURN o
     } AS chosen
RETURN rec.itemId AS item_id, rec.title AS title, score,
       [o IN chosen |
         CASE o.part
           WHEN 0 THEN {
             reason: 'similar_co_interaction',
             nodes: [
               {label: 'Item', id: src.itemId, name: src.title},
               {label: 'User', id: raters[o.rank].user.userId, name: null},
               {label: 'Item', id: rec.itemId, name: rec.title}],
             rels: [
               {type: 'INTERACTED', start: 1, end: 0},
               {type: 'INTERACTED', start: 1, end: 2}]}
           ELSE {
             reason: 'similar_trait',
             nodes: [
               {label: 'Item', id: src.itemId, name: src.title},
               CASE traits[o.rank].kind
                 WHEN 'IN_GENRE' THEN {label: 'Genre', id: traits[o.rank].trait.name, name: traits[o.rank].trait.name}
                 WHEN 'HAS_TAG' THEN {label: 'Tag', id: traits[o.rank].trait.name, name: traits[o.rank].trait.name}
                 ELSE {label: 'Person', id: traits[o.rank].trait.personId, name: traits[o.rank].trait.name}
               END,
               {label: 'Item', id: rec.itemId, name: rec.title}],
             rels: CASE WHEN traits[o.rank].kind IN ['ACTED_IN', 'DIRECTED']
               THEN [{type: traits[o.rank].kind, start: 1, end: 0}, {type: traits[o.rank].kind, start: 1, end: 2}]
               ELSE [{type: traits[o.rank].kind, start: 0, end: 1}, {type: traits[o.rank].kind, start: 2, end: 1}]
             END}
         END] AS paths
ORDER BY score DESC, item_id ASC
