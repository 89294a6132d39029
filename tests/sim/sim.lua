-- sim.lua - the conflict hook of tests/sim/sim.rules (table t_lua).
--
-- Deterministic on purpose: the simulator's model re-implements it in C
-- (tests/sim/model.c, lua_sim_merge) and must reach the same row.
--   * both sides' qty changes relative to the base count (base missing: 0);
--   * every other column comes from the newer side: higher ts_ms, on equal
--     ts_ms the site whose name sorts first;
--   * when current.n + incoming.n is a multiple of 5 it gives up (nil): the
--     conflict goes to an operator, so `manual` through Lua is exercised too.
function sim_merge(base, current, incoming, ctx)
    if current == nil or incoming == nil then
        return nil
    end
    if (current.n + incoming.n) % 5 == 0 then
        return nil
    end
    local newer = incoming
    if ctx.current_ts > ctx.incoming_ts or
        (ctx.current_ts == ctx.incoming_ts and ctx.current_site < ctx.incoming_site) then
        newer = current
    end
    local row = {}
    for column, value in pairs(newer) do
        row[column] = value
    end
    local base_qty = 0
    if base ~= nil then
        base_qty = base.qty
    end
    row.qty = current.qty + incoming.qty - base_qty
    return row
end
