// Purpose: social recall: items liked by the people the user follows (weight 1) and by the people those follow
//          (friends of friends, weight $hopDecay: damped for the extra hop), with the concrete paths.
//   Fan-out: at most $maxFollowees followees of the user and $maxFolloweesPerFollowee of each followee (by userId);
//          the $maxPeople best people (weight, then how many followees lead to them, then userId); up to
//          $maxItemsPerPerson positives per person (highest rated, then most recent, then by itemId; positive =
//          rating >= $minRating or no rating) among its first $maxItemsScannedPerPerson interactions in store order.
//          score(item) = Σ_person weight(person) · (1 + rating − $minRating, or 1 without rating).
//          Items the user interacted with and $excludeItems are never returned; filters apply before LIMIT $k.
// History: $seenIds (every item the user interacted with) is read once per request for every strategy and given;
//          when null, the query reads it from the user's interactions itself (as pasted in the Browser).
// Parameters: $userId: string; $seenIds: list of strings or null; $k: int; $minRating, $hopDecay: float; $maxFollowees, $maxFolloweesPerFollowee,
//             $maxPeople, $maxItemsScannedPerPerson, $maxItemsPerPerson, $maxPaths: int; $excludeItems,
//             $includeGenres, $excludeGenres: padded lists of strings (off when empty or led by ''); $yearMin,
//             $yearMax: [int or null] (null = no bound)
//             $now: [int or null] (epoch seconds; null = the server's clock): hidden items and items outside
//             their availability window (availableFrom <= now < availableUntil) are never returned
// Returns: item_id, title, score, paths (list of {reason: 'followee' | 'followee_of_followee',
//          nodes: [{label, id, name}], rels: [{type, start, end}]}; path = user -FOLLOWS-> person -INTERACTED-> item
//          or user -FOLLOWS-> person -FOLLOWS-> person -INTERACTED-> item), ordered by score desc, item_id asc
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
     // the items never returned: the user's (given as $seenIds, read once per request for every strategy, or read
     // here when null) and $excludeItems
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
