// Purpose: popularity recall, the cold-start fallback: what is liked lately, boosted in the user's preferred genres
//          and by what users who share the user's attributes liked.
//   Works for a user with no interactions and for a user id that is not in the graph (then: global popularity).
//   pop(item) = Σ over the $window most recent timestamped positives (index-ordered scan of INTERACTED.timestamp)
//          of 0.5^((now − timestamp) / $halfLifeDays days), now = the newest timestamp in the graph (deterministic on
//          historic data).
//          The same for every user: $recent, when given, is that window as popularity_window.cypher computes it
//          ([item_id, pop], most popular first; held by graph/recall.py's PopularityWindow and refreshed every few
//          seconds), and the query reads it instead of the interactions; null: computed here.
//   The longer window: when fewer than $k items of the recent window pass the filters (a graph without
//          timestamps, a catalogue whose recent activity is a few just-posted interactions, a narrow filter), every
//          other item with positives is added, pop = its positive count scaled below the least popular recent item
//          (min recent pop · count / (largest count + 1); the count itself when the recent window is empty), so
//          that the list fills up to $k when the catalogue allows; those items are "popular overall".
//   Preferred genres: the genres the user PREFERS (share 1) and those of their $maxSeeds strongest positives
//          (share = fraction of those seeds in the genre); the $maxGenres largest shares are kept.
//   Peers (demographic cold start): users sharing one of the user's attributes (HAS_ATTRIBUTE: age band, country,
//          ...), at most $maxPeersPerAttribute per attribute (by userId, among its first $maxPeersScannedPerAttribute
//          users in store order); peerShare(item) = the fraction of those
//          (peer, attribute) pairs whose peer has the item among their $maxItemsPerPeer strongest positives
//          (rating or weight, then most recent, then itemId).
//   The $poolSize most popular unseen items that pass the filters (of the window; of the longer window too when it
//          is thin) are re-scored
//          score = pop · (1 + $genreBoost · Σ share of their preferred genres + $peerBoost · peerShare).
// History: $seedIds (the user's seeds, strongest first, as graph/recall.py's History orders them) and $seenIds (every
//          item the user interacted with) are read once per request for every strategy and given; when null, the
//          query reads them from the user's interactions itself (as pasted in the Browser).
// Parameters: $userId: string; $seedIds, $seenIds: lists of strings or null; $recent: list of [string, float] or null;
//             $k, $window, $maxSeeds, $maxGenres, $poolSize, $maxPeersScannedPerAttribute,
//             $maxPeersPerAttribute, $maxItemsPerPeer: int; $minRating, $halfLifeDays, $genreBoost, $peerBoost: float; $excludeItems,
//             $includeGenres, $excludeGenres: padded lists of strings (off when empty or led by '');
//             $yearMin, $yearMax: [int or null] (null = no bound)
//             $now: [int or null] (epoch seconds; null = the server's clock): hidden items and items outside
//             their availability window (availableFrom <= now < availableUntil) are never returned
// Returns: item_id, title, score, paths (at most one: {reason: 'popular_in_genre', nodes, rels} with
//          user -INTERACTED-> seed -IN_GENRE-> genre <-IN_GENRE- item or user -PREFERS-> genre <-IN_GENRE- item,
//          or, when no preferred genre matches and a peer liked it, {reason: 'popular_with_peers'} with
//          user -HAS_ATTRIBUTE-> attribute <-HAS_ATTRIBUTE- peer -INTERACTED-> item,
//          or {reason: 'popular', nodes: [], rels: []}; for items of the longer window the reasons are
//          'popular_overall_in_genre' and 'popular_overall'), ordered by score desc, item_id asc
OPTIONAL MATCH (u:User {userId: $userId})
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
  CALL (u, seeds) {
    MATCH (u)-[:PREFERS]->(g)
    RETURN g, 1.0 AS share, -1 AS via
    UNION ALL
    UNWIND range(0, size(seeds) - 1) AS seedRank
    WITH seedRank, seeds[seedRank] AS seed
    MATCH (seed)-[:IN_GENRE]->(g)
    WITH g, count(*) AS n, min(seedRank) AS via
    RETURN g, toFloat(n) / size(seeds) AS share, via
  }
  WITH g, share, via
  ORDER BY share DESC, via ASC, g.name ASC
  WITH g, collect({share: share, via: via})[0] AS best
  ORDER BY best.share DESC, best.via ASC, g.name ASC
  LIMIT $maxGenres
  RETURN collect({genre: g, share: best.share, via: best.via}) AS preferred
}
CALL (u) {
  MATCH (u)-[:HAS_ATTRIBUTE]->(a:Attribute)
  WHERE $peerBoost > 0
  CALL (u, a) {
    CALL (a) {
      MATCH (a)<-[:HAS_ATTRIBUTE]-(peer:User)
      RETURN peer
      LIMIT $maxPeersScannedPerAttribute
    }
    WITH peer
    WHERE peer <> u
    WITH peer ORDER BY peer.userId ASC
    LIMIT $maxPeersPerAttribute
    RETURN peer
  }
  WITH collect({peer: peer, attribute: a}) AS pairs
  UNWIND pairs AS pair
  CALL (pair) {
    WITH pair.peer AS peer
    MATCH (peer)-[r:INTERACTED]->(x)
    WHERE (r.rating IS NULL OR r.rating >= $minRating) AND coalesce(r.polarity, 1) > 0
    WITH x ORDER BY coalesce(r.rating, r.weight, 0) DESC, coalesce(r.timestamp, 0) DESC, x.itemId ASC
    LIMIT $maxItemsPerPeer
    RETURN x
  }
  WITH x, size(pairs) AS total, collect(pair) AS likers
  RETURN collect({item: x, share: toFloat(size(likers)) / total, via: likers[0]}) AS peerItems
}
CALL () {
  // read only when the window is computed here (LIMIT 0 reads nothing)
  MATCH ()-[r:INTERACTED]->()
  WHERE r.timestamp IS NOT NULL
  WITH r ORDER BY r.timestamp DESC
  LIMIT CASE WHEN $recent IS NULL THEN 1 ELSE 0 END
  RETURN max(r.timestamp) AS now
}
WITH u, seeds, preferred, peerItems, now, excluded
CALL (now, excluded) {
  CALL (now, excluded) {
    // the window computed here (when $recent is null; LIMIT 0 reads nothing) ...
    MATCH ()-[r:INTERACTED]->(i)
    WHERE r.timestamp IS NOT NULL
    WITH r, i ORDER BY r.timestamp DESC
    LIMIT CASE WHEN $recent IS NULL THEN $window ELSE 0 END
    WITH r, i
    WHERE (r.rating IS NULL OR r.rating >= $minRating) AND coalesce(r.polarity, 1) > 0
    WITH i AS rec, sum(0.5 ^ (toFloat(now - r.timestamp) / ($halfLifeDays * 86400.0))) AS pop
    WHERE pop > 0
      AND (coalesce($includeGenres[0], '') = '' OR EXISTS { (rec)-[:IN_GENRE]->(g:Genre) WHERE g.name IN $includeGenres })
      AND (coalesce($excludeGenres[0], '') = '' OR NOT EXISTS { (rec)-[:IN_GENRE]->(g:Genre) WHERE g.name IN $excludeGenres })
      AND ($yearMin[0] IS NULL OR rec.year >= $yearMin[0])
      AND ($yearMax[0] IS NULL OR rec.year <= $yearMax[0])
      AND NOT coalesce(rec.hidden, false)
      AND (rec.availableFrom IS NULL OR rec.availableFrom <= coalesce($now[0], timestamp() / 1000))
      AND (rec.availableUntil IS NULL OR rec.availableUntil > coalesce($now[0], timestamp() / 1000))
    // most popular first, the user's own items skipped lazily: a heavy user's history is compared with the
    // $poolSize best (and the seen among them), not with every item of the window
    WITH rec, pop ORDER BY pop DESC, rec.itemId ASC
    WITH rec, pop WHERE NOT rec.itemId IN excluded
    WITH rec, pop LIMIT $poolSize
    RETURN collect({rec: rec, pop: pop}) AS computed
  }
  CALL (excluded) {
    // ... or given ($recent: popularity_window.cypher's list, already in that order): read lazily up to $poolSize
    WITH excluded
    WHERE $recent IS NOT NULL
    UNWIND $recent AS entry
    WITH entry, excluded
    WHERE NOT entry[0] IN excluded
    MATCH (rec:Item {itemId: entry[0]})
    WHERE (coalesce($includeGenres[0], '') = '' OR EXISTS { (rec)-[:IN_GENRE]->(g:Genre) WHERE g.name IN $includeGenres })
      AND (coalesce($excludeGenres[0], '') = '' OR NOT EXISTS { (rec)-[:IN_GENRE]->(g:Genre) WHERE g.name IN $excludeGenres })
      AND ($yearMin[0] IS NULL OR rec.year >= $yearMin[0])
      AND ($yearMax[0] IS NULL OR rec.year <= $yearMax[0])
      AND NOT coalesce(rec.hidden, false)
      AND (rec.availableFrom IS NULL OR rec.availableFrom <= coalesce($now[0], timestamp() / 1000))
      AND (rec.availableUntil IS NULL OR rec.availableUntil > coalesce($now[0], timestamp() / 1000))
    WITH rec, entry[1] AS pop LIMIT $poolSize
    RETURN collect({rec: rec, pop: pop}) AS given
  }
  WITH excluded, CASE WHEN $recent IS NULL THEN computed ELSE given END AS recent
  CALL (recent, excluded) {
    UNWIND recent AS r
    RETURN r.rec AS rec, r.pop AS pop, false AS overall
    UNION ALL
    UNWIND CASE WHEN size(recent) < $k THEN [true] ELSE [] END AS thin
    MATCH (i:Item)
    WHERE NOT i.itemId IN excluded AND NOT i IN [r IN recent | r.rec]
      AND (coalesce($includeGenres[0], '') = '' OR EXISTS { (i)-[:IN_GENRE]->(g:Genre) WHERE g.name IN $includeGenres })
      AND (coalesce($excludeGenres[0], '') = '' OR NOT EXISTS { (i)-[:IN_GENRE]->(g:Genre) WHERE g.name IN $excludeGenres })
      AND ($yearMin[0] IS NULL OR i.year >= $yearMin[0])
      AND ($yearMax[0] IS NULL OR i.year <= $yearMax[0])
      AND NOT coalesce(i.hidden, false)
      AND (i.availableFrom IS NULL OR i.availableFrom <= coalesce($now[0], timestamp() / 1000))
      AND (i.availableUntil IS NULL OR i.availableUntil > coalesce($now[0], timestamp() / 1000))
    WITH i, COUNT { (i)<-[r:INTERACTED]-() WHERE (r.rating IS NULL OR r.rating >= $minRating) AND coalesce(r.polarity, 1) > 0 } AS n
    WHERE n > 0
    WITH collect({rec: i, n: toFloat(n)}) AS counted,
         reduce(m = 0.0, r IN recent | CASE WHEN m = 0.0 OR r.pop < m THEN r.pop ELSE m END) AS floor
    WITH counted, floor, reduce(m = 0.0, c IN counted | CASE WHEN c.n > m THEN c.n ELSE m END) AS most
    UNWIND counted AS c
    RETURN c.rec AS rec, CASE WHEN floor > 0 THEN floor * c.n / (most + 1.0) ELSE c.n END AS pop, true AS overall
  }
  RETURN rec, pop, overall
  ORDER BY pop DESC, rec.itemId ASC
  LIMIT $poolSize
}
WITH u, seeds, preferred, peerItems, collect({rec: rec, pop: pop, overall: overall}) AS pool
CALL (pool, peerItems) {
  // the pool joined with the peers' items on the item (an aggregation, i.e. a hash join)
  UNWIND pool AS entry
  RETURN entry.rec AS rec, entry.pop AS pop, entry.overall AS overall, null AS peer
  UNION ALL
  UNWIND peerItems AS p
  RETURN p.item AS rec, null AS pop, null AS overall, p AS peer
}
WITH u, seeds, preferred, rec, max(pop) AS pop, max(overall) AS overall, collect(peer)[0] AS peer
WHERE pop IS NOT NULL
WITH u, seeds, preferred, rec, pop, overall, peer, [(rec)-[:IN_GENRE]->(g) | g] AS genres
WITH u, seeds, rec, pop, overall, peer, [p IN preferred WHERE p.genre IN genres] AS matched
WITH u, seeds, rec, overall, matched, peer,
     pop * (1.0 + $genreBoost * reduce(s = 0.0, p IN matched | s + p.share) + $peerBoost * coalesce(peer.share, 0.0))
       AS score
ORDER BY score DESC, rec.itemId ASC
LIMIT $k
WITH u, seeds, rec, score, matched[0] AS why, peer.via AS viaPeer,
     CASE WHEN overall THEN 'popular_overall' ELSE 'popular' END AS plain,
     CASE WHEN overall THEN 'popular_overall_in_genre' ELSE 'popular_in_genre' END AS inGenre
RETURN rec.itemId AS item_id, rec.title AS title, score,
       CASE
         WHEN why IS NULL AND viaPeer IS NOT NULL THEN [{
           reason: 'popular_with_peers',
           nodes: [
             {label: 'User', id: u.userId, name: null},
             {label: 'Attribute', id: viaPeer.attribute.attributeId, name: viaPeer.attribute.value},
             {label: 'User', id: viaPeer.peer.userId, name: null},
             {label: 'Item', id: rec.itemId, name: rec.title}],
           rels: [
             {type: 'HAS_ATTRIBUTE', start: 0, end: 1},
             {type: 'HAS_ATTRIBUTE', start: 2, end: 1},
             {type: 'INTERACTED', start: 2, end: 3}]}]
         WHEN why IS NULL THEN [{reason: plain, nodes: [], rels: []}]
         WHEN why.via < 0 THEN [{
           reason: inGenre,
           nodes: [
             {label: 'User', id: u.userId, name: null},
             {label: 'Genre', id: why.genre.name, name: why.genre.name},
             {label: 'Item', id: rec.itemId, name: rec.title}],
           rels: [
             {type: 'PREFERS', start: 0, end: 1},
             {type: 'IN_GENRE', start: 2, end: 1}]}]
         ELSE [{
           reason: inGenre,
           nodes: [
             {label: 'User', id: u.userId, name: null},
             {label: 'Item', id: seeds[why.via].itemId, name: seeds[why.via].title},
             {label: 'Genre', id: why.genre.name, name: why.genre.name},
             {label: 'Item', id: rec.itemId, name: rec.title}],
           rels: [
             {type: 'INTERACTED', start: 0, end: 1},
             {type: 'IN_GENRE', start: 1, end: 2},
             {type: 'IN_GENRE', start: 3, end: 2}]}]
       END AS paths
ORDER BY score DESC, item_id ASC
