-- wrk script for the webhook benchmark (bench/webhook.py passes its settings in the environment).
-- Every request is a different address: a "create" of a new account in one of the seeded domains,
-- then a "password" call for the account created just before, with a pre-computed bcrypt hash so
-- the server measures the sync path, not the hashing.
local secret = os.getenv("SYNC_SECRET")
local password_hash = os.getenv("SYNC_PASSWORD_HASH")
local domains = tonumber(os.getenv("SYNC_DOMAINS"))
local run = os.getenv("SYNC_RUN")  -- a fresh prefix per run: creates never hit an existing row

local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("thread_id", threads)
end

local counter = 0
local function address(number)
  -- demo00001.example … as demo.demo_domain() names them
  return string.format("wh%s-%d-%d@demo%05d.example", run, thread_id, number, number % domains + 1)
end

function request()
  counter = counter + 1
  local body
  if counter % 2 == 1 then
    body = string.format('{"action":"create","email":"%s","password":"%s","quota_mb":1024}',
      address(counter), password_hash)
  else
    body = string.format('{"action":"password","email":"%s","password":"%s"}',
      address(counter - 1), password_hash)
  end
  return wrk.format("POST", nil, {["Content-Type"] = "application/json", ["X-Sync-Secret"] = secret}, body)
end
