// Purpose: a cheap fingerprint of a user's interactions, so that the API can reuse a cached answer without
//          reading the history (PROFILE: one unique-index seek and two degree reads, 5 db hits for any user):
//          the INTERACTED degree, interactionsRev, which every kgrec write that creates or changes an
//          interaction bumps (upsert_interactions.cypher), and the PREFERS degree (onboarding genres). An
//          interaction added or removed by any writer changes the degree; a rating changed by a writer other
//          than kgrec's shows once the cache's TTL has passed. listsShown (lists recorded for the user,
//          record_impressions.cypher) lets exposure fatigue and rotation refresh a cached answer.
// Parameters: $userId: string
// Returns: n (int), rev (int; 0 when never bumped), preferred (int), lists (int; 0 when none recorded); no row when
//          the user does not exist
MATCH (u:User {userId: $userId})
RETURN COUNT { (u)-[:INTERACTED]->() } AS n, coalesce(u.interactionsRev, 0) AS rev,
       COUNT { (u)-[:PREFERS]->() } AS preferred, coalesce(u.listsShown, 0) AS lists
