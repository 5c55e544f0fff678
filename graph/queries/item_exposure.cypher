// Purpose: the impressions and attributed clicks of every item recorded lists have shown (record_impressions.cypher,
//          attribute_feedback.cypher): the counts exploration's Thompson sampling draws from (api/exploration.py).
// Parameters: none
// Returns: item_id, impressions (int), clicks (int), one row per item shown at least once
MATCH (i:Item)
WHERE i.impressions > 0
RETURN i.itemId AS item_id, i.impressions AS impressions, coalesce(i.clicks, 0) AS clicks
