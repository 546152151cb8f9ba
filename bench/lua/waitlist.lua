-- Mixed POST /api/v1/waitlist traffic, each request from a client address of its own
-- (X-Forwarded-For through a trusted proxy): 70% new sign-ups, 15% repeats of an earlier
-- address (200, one row, no second acknowledgement), 10% invalid addresses (422), 5% honeypot
-- bots (answered like a success, nothing stored). Addresses start with WAITLIST_PREFIX, so the
-- run can be audited afterwards; done() prints one WAITLIST line with the counts.
local prefix = os.getenv("WAITLIST_PREFIX")
local counter = 0
local recent = {}
local headers = { ["Content-Type"] = "application/json" }
sent_new = 0
sent_repeat = 0
sent_invalid = 0
sent_bot = 0
s200 = 0
s201 = 0
s422 = 0
s429 = 0
s5xx = 0
other = 0

local threads = {}

setup = function(thread)
  threads[#threads + 1] = thread
end

init = function(args)
  math.randomseed(7)
end

request = function()
  counter = counter + 1
  headers["X-Forwarded-For"] = string.format(
    "10.%d.%d.%d", math.floor(counter / 65536) % 256, math.floor(counter / 256) % 256, counter % 256)
  local roll = math.random()
  local body
  if roll < 0.10 then
    sent_invalid = sent_invalid + 1
    body = '{"email":"not-an-address","source":"ad"}'
  elseif roll < 0.15 then
    sent_bot = sent_bot + 1
    body = string.format('{"email":"bot-%s-%d@example.com","website":"http://spam.example"}',
      prefix, counter)
  elseif roll < 0.30 and #recent > 0 then
    sent_repeat = sent_repeat + 1
    body = string.format('{"email":"%s","source":"blog"}', recent[math.random(#recent)])
  else
    sent_new = sent_new + 1
    local email = string.format("w-%s-%d@example.com", prefix, counter)
    recent[((sent_new - 1) % 1000) + 1] = email
    body = string.format('{"email":"%s","source":"ad"}', email)
  end
  return wrk.format("POST", "/api/v1/waitlist", headers, body)
end

response = function(status, headers, body)
  if status == 201 then s201 = s201 + 1
  elseif status == 200 then s200 = s200 + 1
  elseif status == 422 then s422 = s422 + 1
  elseif status == 429 then s429 = s429 + 1
  elseif status >= 500 then s5xx = s5xx + 1
  else other = other + 1 end
end

done = function(summary, latency, requests)
  local names = { "sent_new", "sent_repeat", "sent_invalid", "sent_bot",
                  "s200", "s201", "s422", "s429", "s5xx", "other" }
  local totals = {}
  for _, name in ipairs(names) do totals[name] = 0 end
  for _, thread in ipairs(threads) do
    for _, name in ipairs(names) do totals[name] = totals[name] + thread:get(name) end
  end
  local parts = {}
  for _, name in ipairs(names) do parts[#parts + 1] = name .. "=" .. totals[name] end
  io.write("WAITLIST " .. table.concat(parts, " ") .. "\n")
end
