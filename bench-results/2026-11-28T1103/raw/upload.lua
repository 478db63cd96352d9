-- wrk: POST one multipart body (the file in field "file") per request and
-- check each answer: the expected MD5 (BENCH_EXPECT) or, if empty, success.
local f = assert(io.open(os.getenv("BENCH_FILE"), "rb"))
local data = f:read("*a")
f:close()
expect = os.getenv("BENCH_EXPECT") or ""
local b = "hashdbench0123456789abcdef"
wrk.method = "POST"
wrk.headers["Content-Type"] = "multipart/form-data; boundary=" .. b
wrk.body = "--" .. b .. "\r\nContent-Disposition: form-data; name=\"file\"; filename=\"f\"\r\n" ..
  "Content-Type: application/octet-stream\r\n\r\n" .. data .. "\r\n--" .. b .. "--\r\n"
data = nil
bad = 0
example = ""
function response(status, headers, body)
  local ok
  if expect ~= "" then
    ok = status == 200 and body:find('"hash":"' .. expect .. '"', 1, true) ~= nil
  else
    ok = status == 200 and body:find('"success":true', 1, true) ~= nil
  end
  if not ok then
    bad = bad + 1
    if example == "" then example = status .. " " .. body:sub(1, 200) end
  end
end
local threads = {}
function setup(thread) table.insert(threads, thread) end
function done(s, lat, req)
  local bad_total, ex = 0, ""
  for _, t in ipairs(threads) do
    bad_total = bad_total + t:get("bad")
    if ex == "" then ex = t:get("example") end
  end
  ex = ex:gsub('[\\"%c]', "'")
  local p = {}
  for _, q in ipairs({50, 75, 90, 99, 99.9}) do
    table.insert(p, string.format('"%s":%.1f', tostring(q), lat:percentile(q)))
  end
  io.write(string.format('BENCHJSON {"requests":%d,"duration_us":%d,"bytes_read":%d,' ..
    '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},"bad":%d,' ..
    '"example":"%s","latency_us":{"mean":%.1f,"max":%.1f,%s}}\n',
    s.requests, s.duration, s.bytes, s.errors.connect, s.errors.read, s.errors.write,
    s.errors.status, s.errors.timeout, bad_total, ex, lat.mean, lat.max, table.concat(p, ",")))
end
