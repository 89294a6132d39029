-- retail.lua - conflict hooks for examples/retail/retail.rules (Lua 5.4).
--
-- A conflict function is called as f(base, current, incoming, ctx):
--   base      the row as both sides last agreed on it (nil when unknown)
--   current   the consolidated row (the version that won so far)
--   incoming  the conflicting change that just arrived
--   ctx       details of the conflict (table, origin site, ...)
-- Rows are tables of column name -> value (a JSON null is sluice.null). Return
-- the merged row, or nil to park the conflict for an operator (the current
-- version stays meanwhile). docs/conflicts.md has the details.

-- Customers: points earned at two sites both count (each side's change
-- relative to the base is added); every other column follows the version
-- with the newer updated_at (ISO-8601 text, so string order is time order).
function merge_points(base, current, incoming, ctx)
    local newer = incoming
    if (current.updated_at or "") > (incoming.updated_at or "") then
        newer = current
    end

    local row = {}
    for column, value in pairs(newer) do
        row[column] = value
    end

    local base_points = (base and base.points) or 0
    row.points = (current.points or 0) + (incoming.points or 0) - base_points
    return row
end
