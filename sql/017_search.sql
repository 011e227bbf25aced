-- Search (issue 11 section 4): the product name's character n-grams for
-- a substring search that works for Korean (README.md, "Search").
--
-- search_grams: the distinct characters and character bigrams of the
-- name normalised by cm__search_norm (lower case, white space removed),
-- set by the trigger products_search_grams (functions/17_search.sql),
-- which also fills the rows of before when it is applied.  A query of
-- n >= 2 characters asks for its bigrams (@>, the GIN index), then
-- rechecks the substring; a 1-character query for its unigram.
ALTER TABLE products ADD COLUMN search_grams text[];

CREATE INDEX products_search_grams_idx ON products USING gin (search_grams)
    WHERE NOT stopped;

-- sort=price over the listed products, and the category filter with it
CREATE INDEX products_price_idx ON products (price, id) WHERE NOT stopped;
-- a category's products: counted from the index alone (visibility map),
-- and sorted by price
CREATE INDEX products_category_price_idx ON products (category_id, price, id)
    WHERE NOT stopped;
