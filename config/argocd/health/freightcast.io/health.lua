-- Argo CD health of Freightcast's PredictionModel and FreightPipeline (one script serves both
-- kinds: they share the kstatus conditions), read from the status conditions. Status is trusted
-- only once it describes the current spec (observedGeneration). Waiting on what resolves by
-- itself (a model loading; a pipeline's model, pods or a returning NATS server) is Progressing;
-- a model scaled to zero on purpose is Suspended.
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
local waiting = {Loading = true, ModelNotFound = true, ModelNotReady = true, Unavailable = true,
  Reconciling = true, RollingOut = true, NATSUnreachable = true}

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
elseif ready.reason == "ScaledToZero" then
  hs.status = "Suspended"
  hs.message = describe(ready)
elseif (progressing ~= nil and progressing.status == "True") or waiting[ready.reason] then
  hs.status = "Progressing"
  hs.message = describe(ready)
else
  hs.status = "Degraded"
  hs.message = describe(ready)
end
return hs
