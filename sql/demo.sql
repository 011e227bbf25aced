-- Demo data (not a migration).  Idempotent: existing rows are left alone.
--   users 1..1000      "user N", balance 100,000
--   products 1..200    "Product N", price 1,000 .. 100,000 (multiples of 100), stock 1,000
-- Load after sql/migrate:  psql -X -q -v ON_ERROR_STOP=1 -1 -f sql/demo.sql "<conninfo>"

INSERT INTO users (id, name, balance)
SELECT n, 'user ' || n, 100000
  FROM generate_series(1, 1000) AS n
ON CONFLICT (id) DO NOTHING;

INSERT INTO products (id, name, price, stock)
SELECT n, 'Product ' || n, round((1000 + (n - 1) * 99000.0 / 199) / 100) * 100, 1000
  FROM generate_series(1, 200) AS n
ON CONFLICT (id) DO NOTHING;

-- Explicit ids bypassed the sequence: move it past them.
DO $$
BEGIN
    PERFORM setval(pg_get_serial_sequence('products', 'id'),
                   greatest((SELECT max(id) FROM products), 1));
END
$$;

ANALYZE users;
ANALYZE products;
