// Purpose: a cheap fingerprint of a user's interactions, so that the API can reuse a cached answer without
//          reading (and decoding) the whole history: any new, changed or removed interaction changes it.
// Parameters: $userId: string
// Returns: n (int), ratings, weights (float sums), latest, stamps (int: max and sum of timestamps); no row when the
//          user does not exist
MATCH (u:User {userId: $userId})
OPTIONAL MATCH (u)-[r:INTERACTED]->()
RETURN count(r) AS n, sum(coalesce(r.rating, -1.0)) AS ratings, sum(coalesce(r.weight, -1.0)) AS weights,
       max(r.timestamp) AS latest, sum(coalesce(r.timestamp, 0)) AS stamps
