-- POST /api/v1/auth/login as the accounts listed in EMAILS_FILE (one a line), in turn, all with
-- the password in PASSWORD.
local emails = {}
local password = os.getenv("PASSWORD")
local n = 0

init = function(args)
  for line in io.lines(os.getenv("EMAILS_FILE")) do
    emails[#emails + 1] = line
  end
end

request = function()
  n = n + 1
  local body = string.format('{"email":"%s","password":"%s"}', emails[(n % #emails) + 1], password)
  return wrk.format("POST", "/api/v1/auth/login", { ["Content-Type"] = "application/json" }, body)
end
