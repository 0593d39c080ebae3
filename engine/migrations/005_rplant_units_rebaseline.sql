-- rplant accounts start again from a baseline. Engines before this version read rplant's
-- amounts with a magnitude rule (>= 1e6 meant atomic units of 1e12), which is wrong for coins
-- whose div2 is not 12: a stored counter may be in other units than the amounts read from now
-- on (div2 from /api/dash or RPLANT_DIV2), and comparing the two would award the difference.
-- Dropping the account rows makes the next poll of each a baseline: nothing is awarded twice
-- or out of thin air; what rplant paid between the last old poll and the first new one is not
-- awarded (the safe direction). Awards already made stay in mining_events and players' totals.
DELETE FROM m2p_accounts WHERE pool_name = 'rplant';
