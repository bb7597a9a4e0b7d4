-- Stream positions "ms-seq" in a fixed width whose string order is the stream order
-- (15 digits, '-', 20 digits: streams/positions.py pads the same way), included by
-- the scripts that compare positions.
local function pad(position)
  local dash = string.find(position, '-', 1, true)
  local ms, seq = string.sub(position, 1, dash - 1), string.sub(position, dash + 1)
  return string.rep('0', 15 - #ms) .. ms .. '-' .. string.rep('0', 20 - #seq) .. seq
end
