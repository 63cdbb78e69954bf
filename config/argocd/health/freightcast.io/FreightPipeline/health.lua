-- Argo CD health of a Freightcast FreightPipeline, read from its status conditions (kstatus).
-- Status is trusted only once it describes the current spec (observedGeneration). Waiting for
-- its model or a returning NATS server is Progressing: both resolve by themselves.
local hs = {}
local function condition(t)
  if obj.status == nil or obj.status.conditions == nil then
    return nil
  end
  for _, c in ipairs(obj.status.conditions) do
    if c.type == t then
      return c
    end
  end
  return nil
end
local function describe(c)
  if c.message ~= nil and c.message ~= "" then
    return c.reason .. ": " .. c.message
  end
  return c.reason
end
local waiting = {ModelNotFound = true, ModelNotReady = true, Unavailable = true, Reconciling = true,
  RollingOut = true, NATSUnreachable = true}

if obj.status == nil or obj.status.observedGeneration == nil or obj.metadata.generation == nil
    or obj.status.observedGeneration < obj.metadata.generation then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to observe the current spec"
  return hs
end
local ready = condition("Ready")
local degraded = condition("Degraded")
local progressing = condition("Progressing")
if ready == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to report readiness"
elseif ready.status == "True" then
  hs.status = "Healthy"
  hs.message = describe(ready)
elseif degraded ~= nil and degraded.status == "True" then
  hs.status = "Degraded"
  hs.message = describe(degraded)
elseif (progressing ~= nil and progressing.status == "True") or waiting[ready.reason] then
  hs.status = "Progressing"
  hs.message = describe(ready)
else
  hs.status = "Degraded"
  hs.message = describe(ready)
end
return hs
