-- GET with a Bearer token taken in turn from the file named by TOKENS_FILE (one token a line),
-- so every token's first use is a profile-cache miss while the load is on.
local tokens = {}
local n = 0

init = function(args)
  for line in io.lines(os.getenv("TOKENS_FILE")) do
    tokens[#tokens + 1] = line
  end
end

request = function()
  n = n + 1
  local token = tokens[(n % #tokens) + 1]
  return wrk.format("GET", nil, { ["Authorization"] = "Bearer " .. token })
end
