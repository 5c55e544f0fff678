// Purpose: record served lists (impressions), append-only: one (:Recommendation) node per list with its items in the
//          order shown (position = index), for attribution and the per-variant report; and per shown item the
//          aggregate (:User)-[:SHOWN {count, lastShown, lastRecommendationId, lastList}]->(:Item) that exposure
//          fatigue and rotation read (user_context.cypher), and the item's own impressions count (exploration reads it,
//          item_exposure.cypher). The user's listsShown counts its recorded lists (rows of
//          one user are applied in order); lastList is its value when the item was last shown. A user or item gone
//          meanwhile gets no SHOWN (the list node is still written).
// Parameters: $rows: list of {recommendation_id, user_id, variant, model_version, shown_at (epoch seconds), item_ids}
// Returns: nothing
UNWIND $rows AS row
CREATE (:Recommendation {recommendationId: row.recommendation_id, userId: row.user_id, variant: row.variant,
                         modelVersion: row.model_version, shownAt: row.shown_at, itemIds: row.item_ids})
WITH row
MATCH (u:User {userId: row.user_id})
SET u.listsShown = coalesce(u.listsShown, 0) + 1
WITH u, row, u.listsShown AS list
UNWIND row.item_ids AS itemId
MATCH (i:Item {itemId: itemId})
SET i.impressions = coalesce(i.impressions, 0) + 1
MERGE (u)-[s:SHOWN]->(i)
SET s.count = coalesce(s.count, 0) + 1, s.lastShown = row.shown_at, s.lastRecommendationId = row.recommendation_id,
    s.lastList = list
