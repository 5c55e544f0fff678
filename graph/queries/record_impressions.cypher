// Purpose: record served lists (impressions), aggregated over the lists recorded together: one append-only
//          (:Recommendation) node per list with its items in the order shown (position = index), for attribution
//          and the per-variant report; per (user, item) the aggregate
//          (:User)-[:SHOWN {count, lastShown, lastRecommendationId, lastList}]->(:Item) that exposure fatigue and
//          rotation read (user_context.cypher), once with the summed count; each user's listsShown once (lastList is
//          its value after the list that last showed the item); each item's impressions count once (exploration
//          reads it, item_exposure.cypher). A user or item gone meanwhile gets no SHOWN and no count (the list node
//          is still written). The three parts are independent: each ends in an aggregation, so an empty part leaves
//          the others alone.
// Parameters: $lists: list of {recommendation_id, user_id, variant, model_version, shown_at (epoch seconds), item_ids};
//             $users: list of {user_id, lists (int), items: list of {item_id, count, last_shown,
//             last_recommendation_id, list (int, from 1: the user's list among these that last showed the item)}};
//             $items: list of {item_id, count}
// Returns: nothing
UNWIND $lists AS row
CREATE (:Recommendation {recommendationId: row.recommendation_id, userId: row.user_id, variant: row.variant,
                         modelVersion: row.model_version, shownAt: row.shown_at, itemIds: row.item_ids})
WITH count(*) AS created
UNWIND $users AS row
MATCH (u:User {userId: row.user_id})
SET u.listsShown = coalesce(u.listsShown, 0) + row.lists
WITH u, row, u.listsShown - row.lists AS before
UNWIND row.items AS shown
MATCH (i:Item {itemId: shown.item_id})
MERGE (u)-[s:SHOWN]->(i)
SET s.count = coalesce(s.count, 0) + shown.count, s.lastShown = shown.last_shown,
    s.lastRecommendationId = shown.last_recommendation_id, s.lastList = before + shown.list
WITH count(*) AS merged
UNWIND $items AS row
MATCH (i:Item {itemId: row.item_id})
SET i.impressions = coalesce(i.impressions, 0) + row.count
