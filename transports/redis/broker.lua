-- brokerpool's AMQP model on Redis: one script, every operation atomic.
--
-- Called as EVALSHA sha 0 keyspace op vhost args...  (see transports/redis/driver.py).
-- Every key starts with the keyspace P, key_prefix..'{'..db..'}:' (options.keyspace): the
-- braces are a Redis Cluster hash tag, so that every key one call touches is in one slot.
--   P..'exchanges'          hash   name -> {t=type, d=durable, a=auto_delete, alt=...}
--   P..'queues'             hash   name -> {d, a, o=owner connection or '', x=x-args, p=max priority}
--   P..'b:'..exchange       set    bindings: kind \0 destination \0 routing key \0 arguments
--   P..'rb:'..kind..':'..dest  set reverse index: source \0 binding
--   P..'q:'..queue          list   ready messages (LPUSH in, RPOP out)
--   P..'z:'..queue          zset   ready messages of a priority queue (ZPOPMIN out)
--   P..'c:'..queue          hash   consumers: channel \0 consumer tag -> '1' or 'x' (exclusive)
--   P..'u:'..channel        hash   unacked deliveries: tag -> queue \0 score \0 message
--   P..'own:'..connection   set    what a connection owns: 'u:'..channel, 'c:'..queue \0 field,
--                                  'x:'..exclusive queue
--   P..'leases'             zset   connection -> lease expiry (server time, ms)
--   P..'n:'..queue          pub/sub channel: published to whenever the queue gains messages
--
-- A stored message starts with one flag byte, '1' once it has been delivered
-- and put back (the "redelivered" flag); the script never reads the rest.
-- Errors are raised with RabbitMQ's reply texts ("NOT_FOUND - ..."). A script
-- error does not undo earlier writes, so every operation checks before it writes.

local P, op, V = ARGV[1], ARGV[2], ARGV[3]
local XK, QK, LEASES = P .. 'exchanges', P .. 'queues', P .. 'leases'
local PRIORITY_SPAN = 1099511627776 -- 2^40: room for the sequence number under each level
local SWEEP_BATCH = 16
local LEASE_EXPIRED = 'LEASE_EXPIRED - this connection missed its visibility timeout; '
  .. 'its unacked messages were returned to their queues'

local function fail(text)
  error(text, 0) -- level 0: no position prefix; the caller turns it into an error reply
end

local function not_found(kind, name)
  fail("NOT_FOUND - no " .. kind .. " '" .. name .. "' in vhost '" .. V .. "'")
end

local function precondition(text)
  fail('PRECONDITION_FAILED - ' .. text)
end

local function access_refused(text)
  fail('ACCESS_REFUSED - ' .. text)
end

local function locked(name)
  fail("RESOURCE_LOCKED - cannot obtain exclusive access to locked queue '" .. name
    .. "' in vhost '" .. V .. "'. It could be originally declared on another connection"
    .. ' or the exclusive property value does not match that of the original declaration.')
end

local function shown(value)
  if type(value) == 'string' then
    return "'" .. value .. "'"
  end
  return tostring(value)
end

local function inequivalent(arg, kind, name, got, now)
  precondition("inequivalent arg '" .. arg .. "' for " .. kind .. " '" .. name
    .. "' in vhost '" .. V .. "': received " .. shown(got) .. ' but current is ' .. shown(now))
end

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local function flag(v)
  return v == '1'
end

local function split0(text, parts)
  local out, start = {}, 1
  for _ = 1, parts - 1 do
    local at = string.find(text, '\0', start, true)
    out[#out + 1] = string.sub(text, start, at - 1)
    start = at + 1
  end
  out[#out + 1] = string.sub(text, start)
  return out
end

-- -- queues -------------------------------------------------------------------

-- The decoded record of an exchange (hash XK) or a queue (hash QK), or nil.
local function meta(hash, name)
  local raw = redis.call('HGET', hash, name)
  if not raw then
    return nil
  end
  return cjson.decode(raw)
end

local function qmeta(name)
  return meta(QK, name)
end

local function queue_or_fail(name, conn)
  local meta = qmeta(name)
  if not meta then
    not_found('queue', name)
  end
  if meta.o ~= '' and meta.o ~= conn then
    locked(name)
  end
  return meta
end

local function qlen(name, meta)
  if meta.p > 0 then
    return redis.call('ZCARD', P .. 'z:' .. name)
  end
  return redis.call('LLEN', P .. 'q:' .. name)
end

local touched = {}

local function notify()
  for name in pairs(touched) do
    redis.call('PUBLISH', P .. 'n:' .. name, '')
  end
  touched = {}
end

local function seq_member(seq, item)
  return string.format('%016x', seq) .. item
end

local function push(name, meta, item, priority)
  if meta.p > 0 then
    local level = math.max(0, math.min(priority, meta.p))
    local seq = redis.call('INCR', P .. 'seq')
    redis.call('ZADD', P .. 'z:' .. name, (meta.p - level) * PRIORITY_SPAN + seq, seq_member(seq, item))
  else
    redis.call('LPUSH', P .. 'q:' .. name, item)
  end
  touched[name] = true
end

-- Returns the message and its score ('' for plain queues), or nil when empty.
local function pop(name, meta)
  if meta.p > 0 then
    local got = redis.call('ZPOPMIN', P .. 'z:' .. name)
    if #got == 0 then
      return nil
    end
    return string.sub(got[1], 17), got[2]
  end
  local item = redis.call('RPOP', P .. 'q:' .. name)
  if not item then
    return nil
  end
  return item, ''
end

-- Put a delivered message back at the head of its queue, flagged redelivered.
local function requeue(name, score, item)
  local meta = qmeta(name)
  if not meta then
    return -- the queue was deleted meanwhile: its messages went with it
  end
  item = '1' .. string.sub(item, 2)
  if meta.p > 0 then
    local seq = redis.call('INCR', P .. 'seq')
    if score == '' then
      score = seq
    end
    redis.call('ZADD', P .. 'z:' .. name, score, seq_member(seq, item))
  else
    redis.call('RPUSH', P .. 'q:' .. name, item)
  end
  touched[name] = true
end

local function requeue_record(record)
  local parts = split0(record, 3)
  requeue(parts[1], parts[2], parts[3])
end

-- Every unacked delivery of a channel goes back, earliest delivery first in line.
local function restore_channel(chan)
  local key = P .. 'u:' .. chan
  local flat = redis.call('HGETALL', key)
  local tags = {}
  for i = 1, #flat, 2 do
    tags[#tags + 1] = { tonumber(flat[i]), flat[i + 1] }
  end
  table.sort(tags, function(a, b) return a[1] > b[1] end)
  for _, entry in ipairs(tags) do
    requeue_record(entry[2])
  end
  redis.call('DEL', key)
  return #tags
end

-- -- exchanges and bindings ---------------------------------------------------------

local function xmeta(name)
  return meta(XK, name)
end

local function ensure_default_exchanges()
  if redis.call('HEXISTS', XK, 'amq.direct') == 1 then
    return
  end
  for _, kind in ipairs({ 'direct', 'topic', 'fanout', 'headers' }) do
    redis.call('HSETNX', XK, 'amq.' .. kind, cjson.encode({ t = kind, d = true, a = false, alt = '' }))
  end
  redis.call('HSETNX', XK, 'amq.match', cjson.encode({ t = 'headers', d = true, a = false, alt = '' }))
end

local remove_exchange

local function maybe_auto_delete(name)
  local meta = xmeta(name)
  if meta and meta.a and redis.call('SCARD', P .. 'b:' .. name) == 0 then
    remove_exchange(name)
  end
end

-- Remove every binding whose destination is (kind, name); auto-delete emptied sources.
local function drop_inbound(kind, name)
  local key = P .. 'rb:' .. kind .. ':' .. name
  local sources = {}
  for _, entry in ipairs(redis.call('SMEMBERS', key)) do
    local at = string.find(entry, '\0', 1, true)
    local source = string.sub(entry, 1, at - 1)
    redis.call('SREM', P .. 'b:' .. source, string.sub(entry, at + 1))
    sources[source] = true
  end
  redis.call('DEL', key)
  for source in pairs(sources) do
    maybe_auto_delete(source)
  end
end

remove_exchange = function(name)
  redis.call('HDEL', XK, name)
  for _, member in ipairs(redis.call('SMEMBERS', P .. 'b:' .. name)) do
    local parts = split0(member, 4)
    redis.call('SREM', P .. 'rb:' .. parts[1] .. ':' .. parts[2], name .. '\0' .. member)
  end
  redis.call('DEL', P .. 'b:' .. name)
  drop_inbound('x', name)
end

-- -- routing --------------------------------------------------------------------

-- An empty routing key (or pattern) has no words; "a..b" has an empty middle one.
local function words(text)
  local out = {}
  if text == '' then
    return out
  end
  for word in string.gmatch(text .. '.', '([^.]*)%.') do
    out[#out + 1] = word
  end
  return out
end

local function topic_match(pattern, i, key, j)
  if i > #pattern then
    return j > #key
  end
  local word = pattern[i]
  if word == '#' then
    for k = j, #key + 1 do
      if topic_match(pattern, i + 1, key, k) then
        return true
      end
    end
    return false
  end
  if j > #key then
    return false
  end
  if word == '*' or word == key[j] then
    return topic_match(pattern, i + 1, key, j + 1)
  end
  return false
end

local function headers_match(arguments, headers)
  local mode = arguments['x-match'] or 'all'
  local with_x = mode == 'all-with-x' or mode == 'any-with-x'
  local any = mode == 'any' or mode == 'any-with-x'
  for key, want in pairs(arguments) do
    if key ~= 'x-match' and (with_x or string.sub(key, 1, 2) ~= 'x-') then
      local have = headers[key]
      local ok = have ~= nil and (want == cjson.null or have == want)
      if any and ok then
        return true
      end
      if not any and not ok then
        return false
      end
    end
  end
  return not any -- all: nothing failed; any: nothing matched
end

-- The queues a message reaches from `exchange`, each once, across exchange bindings.
local function route(exchange, routing_key, headers_json)
  if exchange == '' then
    if redis.call('HEXISTS', QK, routing_key) == 1 then
      return { routing_key }
    end
    return {}
  end
  local meta = xmeta(exchange)
  if not meta then
    not_found('exchange', exchange)
  end
  local out, seen_queue, seen_exchange = {}, {}, { [exchange] = true }
  local frontier = { { exchange, meta.t } }
  local key_words, headers
  while #frontier > 0 do
    local current = table.remove(frontier)
    local kind = current[2]
    for _, member in ipairs(redis.call('SMEMBERS', P .. 'b:' .. current[1])) do
      local parts = split0(member, 4)
      local hit
      if kind == 'fanout' then
        hit = true
      elseif kind == 'direct' then
        hit = parts[3] == routing_key
      elseif kind == 'topic' then
        key_words = key_words or words(routing_key)
        hit = topic_match(words(parts[3]), 1, key_words, 1)
      else
        headers = headers or cjson.decode(headers_json)
        hit = headers_match(cjson.decode(parts[4]), headers)
      end
      if hit then
        local dest = parts[2]
        if parts[1] == 'q' then
          if not seen_queue[dest] then
            seen_queue[dest] = true
            out[#out + 1] = dest
          end
        elseif not seen_exchange[dest] then
          seen_exchange[dest] = true
          local next_meta = xmeta(dest)
          if next_meta then
            frontier[#frontier + 1] = { dest, next_meta.t }
          end
        end
      end
    end
  end
  return out
end

-- -- connections, leases and the sweep of dead ones --------------------------------------

local remove_consumer

local drop_queue = function(name)
  local meta = qmeta(name)
  if not meta then
    return 0
  end
  local count = qlen(name, meta)
  drop_inbound('q', name)
  redis.call('DEL', P .. 'c:' .. name, P .. 'q:' .. name, P .. 'z:' .. name)
  redis.call('HDEL', QK, name)
  if meta.o ~= '' then
    redis.call('SREM', P .. 'own:' .. meta.o, 'x:' .. name)
  end
  touched[name] = true -- wakes its consumers, who find the queue gone
  return count
end

remove_consumer = function(queue, field)
  if redis.call('HDEL', P .. 'c:' .. queue, field) == 0 then
    return
  end
  local meta = qmeta(queue)
  if meta and meta.a and redis.call('HLEN', P .. 'c:' .. queue) == 0 then
    drop_queue(queue)
  end
end

-- Release everything a connection owned: unacked deliveries go back, its
-- consumers go, its exclusive queues are deleted.
local function release(conn)
  local key = P .. 'own:' .. conn
  local restored = 0
  for _, entry in ipairs(redis.call('SMEMBERS', key)) do
    local kind, rest = string.sub(entry, 1, 1), string.sub(entry, 3)
    if kind == 'u' then
      restored = restored + restore_channel(rest)
    elseif kind == 'c' then
      local at = string.find(rest, '\0', 1, true)
      remove_consumer(string.sub(rest, 1, at - 1), string.sub(rest, at + 1))
    end
  end
  for _, entry in ipairs(redis.call('SMEMBERS', key)) do
    if string.sub(entry, 1, 1) == 'x' then
      drop_queue(string.sub(entry, 3))
    end
  end
  redis.call('DEL', key)
  redis.call('ZREM', LEASES, conn)
  return restored
end

local function sweep(now)
  local dead = redis.call('ZRANGEBYSCORE', LEASES, '-inf', now, 'LIMIT', 0, SWEEP_BATCH)
  local restored = 0
  for _, conn in ipairs(dead) do
    restored = restored + release(conn)
  end
  return restored
end

-- Extend a live connection's lease. False when it had run out: then it is
-- released now, if no sweep did it already.
local function renew(conn, lease_ms, now)
  local expiry = redis.call('ZSCORE', LEASES, conn)
  if not expiry then
    return false
  end
  if tonumber(expiry) <= now then
    release(conn)
    return false
  end
  redis.call('ZADD', LEASES, now + lease_ms, conn)
  return true
end

-- For operations that create records the connection owns: they must not
-- outlive a lease that already ran out (nothing would ever release them).
local function alive_or_fail(conn, now)
  local expiry = redis.call('ZSCORE', LEASES, conn)
  if not expiry or tonumber(expiry) <= now then
    if expiry then
      release(conn)
    end
    fail(LEASE_EXPIRED)
  end
end

local function lease_or_fail(conn, lease_ms, now)
  if not renew(conn, lease_ms, now) then
    fail(LEASE_EXPIRED)
  end
end

-- -- operations ---------------------------------------------------------------------

local OPS = {}

-- connect(conn, lease_ms): start a lease, create the amq.* exchanges, sweep.
OPS.connect = function(a)
  ensure_default_exchanges()
  local now = now_ms()
  redis.call('ZADD', LEASES, now + tonumber(a[2]), a[1])
  sweep(now)
  return 1
end

OPS.renew = function(a)
  local now = now_ms()
  local ok = renew(a[1], tonumber(a[2]), now)
  sweep(now)
  return ok and 1 or 0
end

OPS.disconnect = function(a)
  return release(a[1])
end

-- exchange_declare(name, type, passive, durable, auto_delete, alternate)
OPS.exchange_declare = function(a)
  local name, kind = a[1], a[2]
  local current = name == '' and { t = 'direct', d = true, a = false, alt = '' } or xmeta(name)
  if flag(a[3]) then
    if not current then
      not_found('exchange', name)
    end
    return 1
  end
  if name == '' then
    access_refused('operation not permitted on the default exchange')
  end
  local durable, auto_delete, alternate = flag(a[4]), flag(a[5]), a[6]
  if not current then
    if string.sub(name, 1, 4) == 'amq.' then
      access_refused("exchange name '" .. name .. "' contains reserved prefix 'amq.*'")
    end
    redis.call('HSET', XK, name, cjson.encode({ t = kind, d = durable, a = auto_delete, alt = alternate }))
    return 1
  end
  if current.t ~= kind then inequivalent('type', 'exchange', name, kind, current.t) end
  if current.d ~= durable then inequivalent('durable', 'exchange', name, durable, current.d) end
  if current.a ~= auto_delete then
    inequivalent('auto_delete', 'exchange', name, auto_delete, current.a)
  end
  if current.alt ~= alternate then
    inequivalent('alternate-exchange', 'exchange', name, alternate, current.alt)
  end
  return 1
end

-- exchange_delete(name, if_unused)
OPS.exchange_delete = function(a)
  local name = a[1]
  if name == '' or string.sub(name, 1, 4) == 'amq.' then
    local what = name == '' and 'the default exchange' or ("system exchange '" .. name .. "'")
    access_refused('deletion of ' .. what .. " in vhost '" .. V .. "' not allowed")
  end
  if not xmeta(name) then
    return 0
  end
  if flag(a[2]) and redis.call('SCARD', P .. 'b:' .. name) > 0 then
    precondition("exchange '" .. name .. "' in vhost '" .. V .. "' in use")
  end
  remove_exchange(name)
  return 1
end

-- bind(kind, destination, source, routing_key, arguments_json, x_match, conn)
OPS.bind = function(a)
  local kind, dest, source = a[1], a[2], a[3]
  if source == '' or (kind == 'x' and dest == '') then
    access_refused('operation not permitted on the default exchange')
  end
  local meta = xmeta(source)
  if not meta then
    not_found('exchange', source)
  end
  if kind == 'q' then
    queue_or_fail(dest, a[7])
  elseif not xmeta(dest) then
    not_found('exchange', dest)
  end
  local mode = a[6]
  if meta.t == 'headers' and mode ~= '' and mode ~= 'all' and mode ~= 'any'
      and mode ~= 'all-with-x' and mode ~= 'any-with-x' then
    precondition("Invalid x-match field value '" .. mode .. "'; expected all, any, all-with-x, or any-with-x")
  end
  local member = kind .. '\0' .. dest .. '\0' .. a[4] .. '\0' .. a[5]
  redis.call('SADD', P .. 'b:' .. source, member)
  redis.call('SADD', P .. 'rb:' .. kind .. ':' .. dest, source .. '\0' .. member)
  return 1
end

-- unbind(kind, destination, source, routing_key, arguments_json, conn)
OPS.unbind = function(a)
  local kind, dest, source = a[1], a[2], a[3]
  if source == '' or (kind == 'x' and dest == '') then
    access_refused('operation not permitted on the default exchange')
  end
  if kind == 'q' and qmeta(dest) then
    queue_or_fail(dest, a[6])
  end
  local member = kind .. '\0' .. dest .. '\0' .. a[4] .. '\0' .. a[5]
  if redis.call('SREM', P .. 'b:' .. source, member) == 1 then
    redis.call('SREM', P .. 'rb:' .. kind .. ':' .. dest, source .. '\0' .. member)
    maybe_auto_delete(source)
  end
  return 1
end

-- queue_declare(name, passive, durable, exclusive, auto_delete, x_args_json, max_priority,
--               reserved_ok, conn) -> {name, messages, consumers}
OPS.queue_declare = function(a)
  local name, conn = a[1], a[9]
  local meta = qmeta(name)
  if flag(a[4]) and not flag(a[2]) then
    alive_or_fail(conn, now_ms())
  end
  if flag(a[2]) then
    if not meta then
      not_found('queue', name)
    end
  else
    local owner = flag(a[4]) and conn or ''
    local durable, auto_delete = flag(a[3]), flag(a[5])
    if not meta then
      if string.sub(name, 1, 4) == 'amq.' and not flag(a[8]) then
        access_refused("queue name '" .. name .. "' contains reserved prefix 'amq.*'")
      end
      meta = { d = durable, a = auto_delete, o = owner, x = a[6], p = tonumber(a[7]) }
      redis.call('HSET', QK, name, cjson.encode(meta))
      if owner ~= '' then
        redis.call('SADD', P .. 'own:' .. conn, 'x:' .. name)
      end
    else
      if meta.o ~= owner then locked(name) end
      if meta.d ~= durable then inequivalent('durable', 'queue', name, durable, meta.d) end
      if meta.a ~= auto_delete then
        inequivalent('auto_delete', 'queue', name, auto_delete, meta.a)
      end
      if meta.x ~= a[6] then
        precondition("inequivalent x- arguments for queue '" .. name .. "' in vhost '" .. V
          .. "': received " .. a[6] .. ' but current is ' .. meta.x)
      end
    end
  end
  if meta.o ~= '' and meta.o ~= conn then
    locked(name)
  end
  return { name, qlen(name, meta), redis.call('HLEN', P .. 'c:' .. name) }
end

-- queue_delete(name, if_unused, if_empty, conn) -> messages deleted
OPS.queue_delete = function(a)
  local name = a[1]
  local meta = qmeta(name)
  if not meta then
    return 0
  end
  queue_or_fail(name, a[4])
  if flag(a[2]) and redis.call('HLEN', P .. 'c:' .. name) > 0 then
    precondition("queue '" .. name .. "' in vhost '" .. V .. "' in use")
  end
  if flag(a[3]) and qlen(name, meta) > 0 then
    precondition("queue '" .. name .. "' in vhost '" .. V .. "' not empty")
  end
  return drop_queue(name)
end

-- queue_purge(name, conn) -> messages purged
OPS.queue_purge = function(a)
  local name = a[1]
  local meta = queue_or_fail(name, a[2])
  local count = qlen(name, meta)
  redis.call('DEL', P .. 'q:' .. name, P .. 'z:' .. name)
  return count
end

-- publish(exchange, routing_key, message, headers_json, priority) -> queues reached
OPS.publish = function(a)
  local queues = route(a[1], a[2], a[4])
  local priority = tonumber(a[5])
  for _, name in ipairs(queues) do
    push(name, qmeta(name), a[3], priority)
  end
  return #queues
end

-- get(queue, channel, tag, no_ack, conn, lease_ms) -> {message, messages left} or {}
OPS.get = function(a)
  local name, chan, conn = a[1], a[2], a[5]
  local now = now_ms()
  lease_or_fail(conn, tonumber(a[6]), now)
  sweep(now)
  local meta = queue_or_fail(name, conn)
  local item, score = pop(name, meta)
  if not item then
    return {}
  end
  if not flag(a[4]) then
    redis.call('HSET', P .. 'u:' .. chan, a[3], name .. '\0' .. score .. '\0' .. item)
    redis.call('SADD', P .. 'own:' .. conn, 'u:' .. chan)
  end
  return { item, qlen(name, meta) }
end

-- deliver(conn, lease_ms, then per consumer: channel, queue, wanted, no_ack, next_tag)
-- Takes messages for this connection's consumers, one per consumer in turn, so
-- that consumers of one queue share it round-robin; delivery tags count up per
-- channel from its next_tag. Returns {gone, i, tag, message, i, tag, message, ...}
-- in the order taken, where i numbers the consumer (from 1) and gone lists the
-- consumers whose queue no longer exists (or is another connection's).
OPS.deliver = function(a)
  local conn = a[1]
  local now = now_ms()
  lease_or_fail(conn, tonumber(a[2]), now)
  sweep(now)
  local consumers, gone, tags = {}, {}, {}
  for i = 3, #a, 5 do
    local c = { chan = a[i], queue = a[i + 1], wanted = tonumber(a[i + 2]), no_ack = flag(a[i + 3]),
      meta = qmeta(a[i + 1]) }
    tags[c.chan] = tags[c.chan] or tonumber(a[i + 4])
    consumers[#consumers + 1] = c
    if not c.meta or (c.meta.o ~= '' and c.meta.o ~= conn) then
      gone[#gone + 1] = #consumers
      c.wanted = 0
    end
  end
  local out, owned = { gone }, {}
  local busy = true
  while busy do
    busy = false
    for i, c in ipairs(consumers) do
      if c.wanted > 0 then
        local item, score = pop(c.queue, c.meta)
        if item then
          local tag = tags[c.chan]
          tags[c.chan] = tag + 1
          out[#out + 1] = i
          out[#out + 1] = tag
          out[#out + 1] = item
          if not c.no_ack then
            redis.call('HSET', P .. 'u:' .. c.chan, tag, c.queue .. '\0' .. score .. '\0' .. item)
            owned[c.chan] = true
          end
          c.wanted = c.wanted - 1
          busy = busy or c.wanted > 0
        else
          c.wanted = 0
        end
      end
    end
  end
  for chan in pairs(owned) do
    redis.call('SADD', P .. 'own:' .. conn, 'u:' .. chan)
  end
  return out
end

-- settle(channel, mode, tags...) with mode 'ack' / 'drop' (forget) or 'requeue'.
-- Returns how many of the tags were still recorded.
OPS.settle = function(a)
  local key = P .. 'u:' .. a[1]
  local found = 0
  if a[2] == 'requeue' then
    local tags = {}
    for i = 3, #a do
      tags[#tags + 1] = tonumber(a[i])
    end
    table.sort(tags, function(x, y) return x > y end)
    for _, tag in ipairs(tags) do
      local record = redis.call('HGET', key, tag)
      if record then
        found = found + 1
        requeue_record(record)
        redis.call('HDEL', key, tag)
      end
    end
    return found
  end
  for i = 3, #a do
    found = found + redis.call('HDEL', key, a[i])
  end
  return found
end

-- recover(channel): every unacked delivery of the channel goes back.
OPS.recover = function(a)
  return restore_channel(a[1])
end

-- consume(conn, channel, queue, consumer_tag, exclusive)
OPS.consume = function(a)
  local conn, chan, queue = a[1], a[2], a[3]
  alive_or_fail(conn, now_ms())
  queue_or_fail(queue, conn)
  local key = P .. 'c:' .. queue
  local others = redis.call('HVALS', key)
  if #others > 0 and (flag(a[5]) or others[1] == 'x') then
    access_refused("queue '" .. queue .. "' in vhost '" .. V .. "' in exclusive use")
  end
  local field = chan .. '\0' .. a[4]
  redis.call('HSET', key, field, flag(a[5]) and 'x' or '1')
  redis.call('SADD', P .. 'own:' .. conn, 'c:' .. queue .. '\0' .. field)
  return 1
end

-- cancel(conn, channel, then queue, consumer_tag pairs)
local function cancel_consumers(a)
  local conn, chan = a[1], a[2]
  for i = 3, #a, 2 do
    local field = chan .. '\0' .. a[i + 1]
    redis.call('SREM', P .. 'own:' .. conn, 'c:' .. a[i] .. '\0' .. field)
    remove_consumer(a[i], field)
  end
end

OPS.cancel = function(a)
  cancel_consumers(a)
  return 1
end

-- close_channel(conn, channel, then queue, consumer_tag pairs of its consumers)
OPS.close_channel = function(a)
  local conn, chan = a[1], a[2]
  cancel_consumers(a)
  local count = restore_channel(chan)
  redis.call('SREM', P .. 'own:' .. conn, 'u:' .. chan)
  return count
end

local handler = OPS[op]
if not handler then
  fail('NOT_IMPLEMENTED - unknown operation ' .. tostring(op))
end
local args = {}
for i = 4, #ARGV do
  args[#args + 1] = ARGV[i]
end
local ok, result = pcall(handler, args)
notify() -- for every operation; a failed one may still have released an expired lease
if not ok then
  return redis.error_reply(type(result) == 'table' and result.err or tostring(result))
end
return result
