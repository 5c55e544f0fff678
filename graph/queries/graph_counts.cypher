// Purpose: node counts per label and relationship counts per type, read from the count store (instant).
// Parameters: none
// Returns: kind ("node" | "relationship"), name (label or type; null for the total), count
CALL db.stats.retrieve('GRAPH COUNTS') YIELD data
WITH [n IN data.nodes | {kind: 'node', name: n.label, count: n.count}]
   + [r IN data.relationships WHERE r.startLabel IS NULL AND r.endLabel IS NULL
      | {kind: 'relationship', name: r.relationshipType, count: r.count}] AS counts
UNWIND counts AS c
RETURN c.kind AS kind, c.name AS name, c.count AS count
