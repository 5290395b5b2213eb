-- Weighed goods: an order line's quantity in thousandths of a unit (0.5 kg = 500; 2 pieces =
-- 2000), exact like money in cents.
ALTER TABLE sync_order_items RENAME COLUMN quantity TO quantity_thousandths;
UPDATE sync_order_items SET quantity_thousandths = quantity_thousandths * 1000;
