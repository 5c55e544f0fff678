// Purpose: remove embeddings of another artifact version (nodes the new model does not know keep no stale vector).
// Parameters: $version: string (the version just written)
// Returns: cleared (int)
MATCH (n)
WHERE (n:User OR n:Item) AND n.embeddingVersion IS NOT NULL AND n.embeddingVersion <> $version
REMOVE n.embedding, n.embeddingVersion
RETURN count(*) AS cleared
