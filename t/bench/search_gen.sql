-- make bench-search: a catalogue of :n products (psql -v n=1000000),
-- generated in one INSERT .. SELECT generate_series.  Names: brand +
-- adjective(s) + noun (+ a model code), Korean and ASCII, the spaces
-- between the words sometimes left out ('여성가죽 가방', '여성 가죽가방');
-- 60 categories (10 top-level of 5 leaves); prices 1,000..500,000; 3% of
-- the products STOPPED, 10% SOLD_OUT.
--
-- Triggers are skipped (session_replication_role = replica) and their
-- work done in bulk here: search_grams, on_sale_variants, the default
-- variant.  The stock ledger's INITIAL rows are not written (a bench
-- database, never checked for consistency).
SET session_replication_role = replica;
SET synchronous_commit = off;
SET maintenance_work_mem = '256MB';

INSERT INTO categories (id, parent_id, parent_depth, depth, name)
SELECT t, NULL, NULL, 1, '대분류' || t FROM generate_series(1, 10) t;
INSERT INTO categories (id, parent_id, parent_depth, depth, name)
SELECT 10 + (t - 1) * 5 + l, t, 1, 2, '소분류' || t || '-' || l
  FROM generate_series(1, 10) t, generate_series(1, 5) l;
SELECT setval(pg_get_serial_sequence('categories', 'id'), 100);

SELECT setseed(0.42);
CREATE TEMP TABLE w (kind int, word text, n int);
INSERT INTO w
SELECT 1, b, row_number() OVER () - 1 FROM unnest(ARRAY[
  '나이키','아디다스','뉴발란스','삼성','엘지','루이까또즈','닥스','빈폴',
  '무인양품','이케아','로지텍','애플','소니','휠라','질스튜어트','MLB',
  'Nike','Apple','Sony','Logitech','코오롱','노스페이스','유니클로','자라',
  '마르헨제이','쿠쿠','필립스','다이슨','샤오미','한샘']) b
UNION ALL
SELECT 2, a, row_number() OVER () - 1 FROM unnest(ARRAY[
  '여성','남성','가죽','캐주얼','미니','빅사이즈','방수','무선','고급','데일리',
  '여름','겨울','경량','초경량','프리미엄','빈티지','모던','클래식','스포츠',
  '아동','유아','슬림','오버핏','소가죽','천연','스마트','휴대용','접이식',
  '대용량','컴팩트']) a
UNION ALL
SELECT 3, s, row_number() OVER () - 1 FROM unnest(ARRAY[
  '가방','지갑','운동화','티셔츠','청바지','이어폰','키보드','마우스',
  '텀블러','백팩','크로스백','토트백','숄더백','클러치','카드지갑','벨트',
  '모자','양말','후드티','맨투맨','니트','코트','패딩','원피스','스커트',
  '슬리퍼','샌들','구두','부츠','선글라스','시계','목걸이','반지','귀걸이',
  '노트북','충전기','케이블','스피커','헤드폰','모니터','의자','책상',
  '쿠션','방석','이불','베개','수건','컵','접시','냄비']) s;

CREATE TEMP TABLE wa AS
SELECT kind, array_agg(word ORDER BY n) AS words FROM w GROUP BY kind;

INSERT INTO products (name, price, stock, category_id, stopped,
                      on_sale_variants, search_grams, created_at)
SELECT g.name, g.price, g.stock, g.cat, g.stopped,
       (g.stock > 0)::int, cm__search_row_grams(g.name, (g.stock > 0)::int),
       now() - (:n - i) * interval '1 second'
  FROM (SELECT i,
               b[1 + (random() * 29)::int]
               || CASE WHEN random() < 0.8 THEN ' ' ELSE '' END
               || a[1 + (random() * 29)::int]
               || CASE WHEN random() < 0.5 THEN a[1 + (random() * 29)::int]
                       ELSE '' END
               || CASE WHEN random() < 0.5 THEN ' ' ELSE '' END
               || s[1 + (random() * 49)::int]
               || CASE WHEN random() < 0.3
                       THEN ' ' || chr(65 + (random() * 25)::int)
                            || (100 + (random() * 899)::int)
                       ELSE '' END AS name,
               (1 + (random() * 499)::int) * 1000 AS price,
               CASE WHEN random() < 0.1 THEN 0 ELSE (random() * 100)::int + 1 END AS stock,
               10 + 1 + (random() * 49)::int AS cat,
               random() < 0.03 AS stopped
          FROM generate_series(1, :n) i,
               (SELECT words AS b FROM wa WHERE kind = 1) wb,
               (SELECT words AS a FROM wa WHERE kind = 2) wad,
               (SELECT words AS s FROM wa WHERE kind = 3) ws) g;

INSERT INTO product_variants (product_id, stock)
SELECT id, stock FROM products p
 WHERE NOT EXISTS (SELECT 1 FROM product_variants v WHERE v.product_id = p.id);

RESET session_replication_role;
VACUUM ANALYZE products;
VACUUM ANALYZE product_variants;
