// kgrec — Neo4j Browser guide: see the recall strategies' explanation paths drawn for a user.
//
// How to use: open Neo4j Browser (http://127.0.0.1:7474/browser/ for `kgrec neo4j start`) and log in.
// 1. Captions: drag docs/browser_style.grass onto the Browser window (or paste `:style` followed by that file's
//    text, as a command of its own), so that users show their userId, items their title, people and genres their name.
// 2. Paste the parameters block once (each line is a `:param name => value;` command: Browser evaluates the value
//    with Cypher, so whole numbers stay integers, which `LIMIT $k` needs; `:params {...}` would turn them into
//    decimals). Then paste one strategy block at a time, or this whole file at once: every statement ends with `;`.
// Change the user or item with the :param line above each block. Every strategy block is the application's own
// query (graph/queries/<name>.cypher, verbatim inside `CALL () { ... }`), followed by a few lines that turn its
// returned paths into drawable relationships: each row is a candidate item, its score and the steps
// (one-relationship paths) of its explanation paths. tests/integration/graph/test_browser_guide.py runs this file
// the way Browser runs a paste (statements split on `;`, `:param` values evaluated by the server) and checks that it
// stays in sync with the queries and their caps.

// ---- parameters: caps at the defaults of graph/recall.py (filters off: [] or [null]; on: ['Drama'], [1990])
:param userId => '1';
:param itemId => '1';
:param k => 10;
:param excludeItems => [];
:param includeGenres => [];
:param excludeGenres => [];
:param yearMin => [null];
:param yearMax => [null];
:param now => [null];
:param seedIds => null;
:param seenIds => null;
:param recent => null;
:param minRating => 4.0;
:param maxPaths => 3;
:param maxSeeds => 50;
:param maxRatersScannedPerSeed => 500;
:param maxCoRatersPerSeed => 50;
:param maxNeighbours => 30;
:param maxItemsScannedPerNeighbour => 3000;
:param maxItemsPerNeighbour => 30;
:param maxTraitDegree => 2000;
:param maxItemsPerTrait => 30;
:param directorWeight => 3.0;
:param actorWeight => 2.0;
:param tagWeight => 1.0;
:param genreWeight => 0.5;
:param maxTagsPerSeed => 5;
:param maxTraits => 60;
:param attributeWeight => 1.0;
:param hopDecay => 0.5;
:param maxFollowees => 100;
:param maxFolloweesPerFollowee => 20;
:param maxPeople => 50;
:param maxItemsScannedPerPerson => 3000;
:param maxItemsPerPerson => 50;
:param window => 3000;
:param halfLifeDays => 180.0;
:param maxGenres => 3;
:param genreBoost => 1.0;
:param poolSize => 200;
:param maxPeersScannedPerAttribute => 1000;
:param maxPeersPerAttribute => 100;
:param maxItemsPerPeer => 50;
:param peerBoost => 1.0;
:param maxCoRaters => 50;
:param maxItemsPerUser => 20;
:param maxItemTags => 10;
:param coShrinkage => 3.0;
:param coWeight => 1.0;
:param traitWeight => 1.0;

// ---- collaborative: Items liked by the users who share the most positives with $userId: user -> liked item <- neighbour -> candidate.
:param userId => '1';
CALL () {
MATCH (u:User {userId: $userId})
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
}
MATCH (candidate:Item {itemId: item_id})
CALL (paths) {
  UNWIND paths AS path
  CALL (path) {
    UNWIND range(0, size(path.nodes) - 1) AS i
    WITH i, path.nodes[i] AS n
    CALL (n) {
      MATCH (x:User {userId: n.id}) WHERE n.label = 'User' RETURN x
      UNION
      MATCH (x:Item {itemId: n.id}) WHERE n.label = 'Item' RETURN x
      UNION
      MATCH (x:Person {personId: n.id}) WHERE n.label = 'Person' RETURN x
      UNION
      MATCH (x:Genre {name: n.id}) WHERE n.label = 'Genre' RETURN x
      UNION
      MATCH (x:Tag {name: n.id}) WHERE n.label = 'Tag' RETURN x
    }
    WITH i, x ORDER BY i
    RETURN collect(x) AS nodes
  }
  UNWIND path.rels AS rel
  WITH nodes[rel.start] AS a, nodes[rel.end] AS b, rel
  MATCH step = (a)-[r]->(b)
  WHERE type(r) = rel.type
  RETURN collect(step) AS drawn
}
RETURN candidate, score, drawn
ORDER BY score DESC, candidate.itemId ASC;

// ---- knowledge: Items sharing directors, actors, tags or genres with what $userId liked: user -> liked item - trait - candidate.
:param userId => '1';
CALL () {
MATCH (u:User {userId: $userId})
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
}
MATCH (candidate:Item {itemId: item_id})
CALL (paths) {
  UNWIND paths AS path
  CALL (path) {
    UNWIND range(0, size(path.nodes) - 1) AS i
    WITH i, path.nodes[i] AS n
    CALL (n) {
      MATCH (x:User {userId: n.id}) WHERE n.label = 'User' RETURN x
      UNION
      MATCH (x:Item {itemId: n.id}) WHERE n.label = 'Item' RETURN x
      UNION
      MATCH (x:Person {personId: n.id}) WHERE n.label = 'Person' RETURN x
      UNION
      MATCH (x:Genre {name: n.id}) WHERE n.label = 'Genre' RETURN x
      UNION
      MATCH (x:Tag {name: n.id}) WHERE n.label = 'Tag' RETURN x
    }
    WITH i, x ORDER BY i
    RETURN collect(x) AS nodes
  }
  UNWIND path.rels AS rel
  WITH nodes[rel.start] AS a, nodes[rel.end] AS b, rel
  MATCH step = (a)-[r]->(b)
  WHERE type(r) = rel.type
  RETURN collect(step) AS drawn
}
RETURN candidate, score, drawn
ORDER BY score DESC, candidate.itemId ASC;

// ---- social: Items liked by people $userId follows (and, damped, by the people they follow). Empty on MovieLens: it has no
// FOLLOWS; load Last.fm (`kgrec load lastfm ...`) to see it, e.g. with :param userId => '2'.
:param userId => '1';
CALL () {
MATCH (u:User {userId: $userId})
CALL (u) {
  MATCH (u)-[:FOLLOWS]->(f:User)
  WITH f ORDER BY f.userId ASC
  LIMIT $maxFollowees
  RETURN collect(f) AS followees
}
CALL (u, followees) {
  CALL (u, followees) {
    UNWIND range(0, size(followees) - 1) AS via
    RETURN followees[via] AS person, via, 1.0 AS weight, 1 AS hops, 1 AS paths
    UNION ALL
    UNWIND range(0, size(followees) - 1) AS via
    CALL (u, followees, via) {
      WITH followees[via] AS f
      MATCH (f)-[:FOLLOWS]->(ff:User)
      WHERE ff <> u AND NOT ff IN followees
      WITH ff ORDER BY ff.userId ASC
      LIMIT $maxFolloweesPerFollowee
      RETURN ff
    }
    WITH ff, min(via) AS via, count(*) AS paths
    RETURN ff AS person, via, $hopDecay AS weight, 2 AS hops, paths
  }
  WITH person, via, weight, hops, paths
  ORDER BY weight DESC, paths DESC, hops ASC, person.userId ASC
  LIMIT $maxPeople
  RETURN collect({user: person, via: via, weight: weight, hops: hops}) AS people
}
WITH u, followees, people
WHERE size(people) > 0
WITH u, followees, people,
     coalesce($seenIds, COLLECT { MATCH (u)-[:INTERACTED]->(s) WHERE $seenIds IS NULL RETURN s.itemId })
     + $excludeItems AS excluded
CALL (people, excluded) {
  UNWIND range(0, size(people) - 1) AS rank
  WITH rank, people[rank] AS pe
  CALL (pe, excluded) {
    WITH pe.user AS p
    CALL (p) {
      MATCH (p)-[r:INTERACTED]->(rec)
      RETURN r, rec
      LIMIT $maxItemsScannedPerPerson
    }
    WITH r, rec
    WHERE (r.rating IS NULL OR r.rating >= $minRating) AND coalesce(r.polarity, 1) > 0 AND NOT rec.itemId IN excluded
    WITH rec, coalesce(1.0 + r.rating - $minRating, 1.0) AS pref, coalesce(r.timestamp, 0) AS ts
    ORDER BY pref DESC, ts DESC, rec.itemId ASC
    LIMIT $maxItemsPerPerson
    RETURN rec, pref
  }
  WITH rec, sum(pe.weight * pref) AS score, collect({c: pe.weight * pref, rank: rank}) AS contributions
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
         UNWIND contributions AS c
         WITH c ORDER BY c.c DESC, c.rank ASC
         LIMIT $maxPaths
         WITH people[c.rank] AS pe
         WITH pe, followees[pe.via] AS f
         RETURN CASE pe.hops
           WHEN 1 THEN {
             reason: 'followee',
             nodes: [
               {label: 'User', id: u.userId, name: null},
               {label: 'User', id: pe.user.userId, name: null},
               {label: 'Item', id: rec.itemId, name: rec.title}],
             rels: [
               {type: 'FOLLOWS', start: 0, end: 1},
               {type: 'INTERACTED', start: 1, end: 2}]}
           ELSE {
             reason: 'followee_of_followee',
             nodes: [
               {label: 'User', id: u.userId, name: null},
               {label: 'User', id: f.userId, name: null},
               {label: 'User', id: pe.user.userId, name: null},
               {label: 'Item', id: rec.itemId, name: rec.title}],
             rels: [
               {type: 'FOLLOWS', start: 0, end: 1},
               {type: 'FOLLOWS', start: 1, end: 2},
               {type: 'INTERACTED', start: 2, end: 3}]}
         END
       } AS paths
ORDER BY score DESC, item_id ASC
}
MATCH (candidate:Item {itemId: item_id})
CALL (paths) {
  UNWIND paths AS path
  CALL (path) {
    UNWIND range(0, size(path.nodes) - 1) AS i
    WITH i, path.nodes[i] AS n
    CALL (n) {
      MATCH (x:User {userId: n.id}) WHERE n.label = 'User' RETURN x
      UNION
      MATCH (x:Item {itemId: n.id}) WHERE n.label = 'Item' RETURN x
      UNION
      MATCH (x:Person {personId: n.id}) WHERE n.label = 'Person' RETURN x
      UNION
      MATCH (x:Genre {name: n.id}) WHERE n.label = 'Genre' RETURN x
      UNION
      MATCH (x:Tag {name: n.id}) WHERE n.label = 'Tag' RETURN x
    }
    WITH i, x ORDER BY i
    RETURN collect(x) AS nodes
  }
  UNWIND path.rels AS rel
  WITH nodes[rel.start] AS a, nodes[rel.end] AS b, rel
  MATCH step = (a)-[r]->(b)
  WHERE type(r) = rel.type
  RETURN collect(step) AS drawn
}
RETURN candidate, score, drawn
ORDER BY score DESC, candidate.itemId ASC;

// ---- popularity: Popular lately, boosted in the genres $userId prefers (works for unknown users too: :param userId => 'nobody').
// Items that are only globally popular have no path: they show as lone candidate nodes.
:param userId => '1';
CALL () {
OPTIONAL MATCH (u:User {userId: $userId})
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
  MATCH ()-[r:INTERACTED]->()
  WHERE r.timestamp IS NOT NULL
  WITH r ORDER BY r.timestamp DESC
  LIMIT CASE WHEN $recent IS NULL THEN 1 ELSE 0 END
  RETURN max(r.timestamp) AS now
}
WITH u, seeds, preferred, peerItems, now, excluded
CALL (now, excluded) {
  CALL (now, excluded) {
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
    WITH rec, pop ORDER BY pop DESC, rec.itemId ASC
    WITH rec, pop WHERE NOT rec.itemId IN excluded
    WITH rec, pop LIMIT $poolSize
    RETURN collect({rec: rec, pop: pop}) AS computed
  }
  CALL (excluded) {
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
}
MATCH (candidate:Item {itemId: item_id})
CALL (paths) {
  UNWIND paths AS path
  CALL (path) {
    UNWIND range(0, size(path.nodes) - 1) AS i
    WITH i, path.nodes[i] AS n
    CALL (n) {
      MATCH (x:User {userId: n.id}) WHERE n.label = 'User' RETURN x
      UNION
      MATCH (x:Item {itemId: n.id}) WHERE n.label = 'Item' RETURN x
      UNION
      MATCH (x:Person {personId: n.id}) WHERE n.label = 'Person' RETURN x
      UNION
      MATCH (x:Genre {name: n.id}) WHERE n.label = 'Genre' RETURN x
      UNION
      MATCH (x:Tag {name: n.id}) WHERE n.label = 'Tag' RETURN x
    }
    WITH i, x ORDER BY i
    RETURN collect(x) AS nodes
  }
  UNWIND path.rels AS rel
  WITH nodes[rel.start] AS a, nodes[rel.end] AS b, rel
  MATCH step = (a)-[r]->(b)
  WHERE type(r) = rel.type
  RETURN collect(step) AS drawn
}
RETURN candidate, score, drawn
ORDER BY score DESC, candidate.itemId ASC;

// ---- similar items: Items similar to $itemId through shared users and shared traits: item <- user -> candidate, item - trait - candidate.
:param itemId => '1';
CALL () {
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
}
MATCH (candidate:Item {itemId: item_id})
CALL (paths) {
  UNWIND paths AS path
  CALL (path) {
    UNWIND range(0, size(path.nodes) - 1) AS i
    WITH i, path.nodes[i] AS n
    CALL (n) {
      MATCH (x:User {userId: n.id}) WHERE n.label = 'User' RETURN x
      UNION
      MATCH (x:Item {itemId: n.id}) WHERE n.label = 'Item' RETURN x
      UNION
      MATCH (x:Person {personId: n.id}) WHERE n.label = 'Person' RETURN x
      UNION
      MATCH (x:Genre {name: n.id}) WHERE n.label = 'Genre' RETURN x
      UNION
      MATCH (x:Tag {name: n.id}) WHERE n.label = 'Tag' RETURN x
    }
    WITH i, x ORDER BY i
    RETURN collect(x) AS nodes
  }
  UNWIND path.rels AS rel
  WITH nodes[rel.start] AS a, nodes[rel.end] AS b, rel
  MATCH step = (a)-[r]->(b)
  WHERE type(r) = rel.type
  RETURN collect(step) AS drawn
}
RETURN candidate, score, drawn
ORDER BY score DESC, candidate.itemId ASC;

// ---- exploration: what $userId liked most, with genres and people (the seeds of the recall queries)
:param userId => '1';
MATCH (u:User {userId: $userId})-[r:INTERACTED]->(i:Item)
WHERE r.rating IS NULL OR r.rating >= 4.0
WITH u, r, i ORDER BY coalesce(r.rating, r.weight) DESC, coalesce(r.timestamp, 0) DESC, i.itemId ASC LIMIT 15
OPTIONAL MATCH (i)-[g:IN_GENRE]->(genre:Genre)
OPTIONAL MATCH (person:Person)-[p:DIRECTED]->(i)
RETURN u, r, i, collect(g) AS genres, collect(genre) AS genreNodes, collect(p) AS directed, collect(person) AS directors;

// ---- exploration: hub traits — how many items each genre, and the busiest tags and people, link to
//      (recall skips traits above maxTraitDegree and weighs the rest by ln(1 + items / degree))
MATCH (g:Genre)
RETURN 'Genre' AS kind, g.name AS trait, COUNT { (g)<-[:IN_GENRE]-() } AS items
UNION ALL
MATCH (t:Tag)
WITH t, COUNT { (t)<-[:HAS_TAG]-() } AS items ORDER BY items DESC LIMIT 10
RETURN 'Tag' AS kind, t.name AS trait, items
UNION ALL
MATCH (p:Person)
WITH p, COUNT { (p)-[:ACTED_IN|DIRECTED]->() } AS items ORDER BY items DESC LIMIT 10
RETURN 'Person' AS kind, p.name AS trait, items;

// ---- exploration: the users closest to $userId by shared positives (the collaborative neighbourhood, uncapped)
:param userId => '1';
MATCH (u:User {userId: $userId})-[r1:INTERACTED]->(i:Item)<-[r2:INTERACTED]-(v:User)
WHERE r1.rating >= 4.0 AND r2.rating >= 4.0
WITH u, v, count(i) AS shared, collect(i)[..5] AS someShared
ORDER BY shared DESC, v.userId ASC LIMIT 10
RETURN u, v, shared, someShared;
