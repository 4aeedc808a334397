-- Argo CD health check for every Causeway kind (causeway.dev/*). Install it in argocd-cm:
--   resource.customizations.health.causeway.dev_Api: |
--     <this file>
-- (and the same for Route, Stage, UsagePlan, Authorizer, VpcLink), or with a wildcard key
--   resource.customizations.health.causeway.dev_*: |   (Argo CD 2.x supports wildcards)
--
-- Healthy     Ready=True at the current generation
-- Degraded    Accepted=False or ResolvedRefs=False (the object is left out), or Programmed=False
--             (a proxy rejected the snapshot)
-- Progressing anything else (not yet observed, proxies still applying)
--
-- tests/tests/cluster.rs runs this file with Debian's lua5.4 on the statuses the controller
-- wrote for every example on a real API server (and on one object it refused).
local hs = { status = "Progressing", message = "Waiting for the Causeway controller" }
if obj.status == nil or obj.status.conditions == nil then
  return hs
end
local generation = obj.metadata.generation
if obj.status.observedGeneration ~= nil and generation ~= nil and obj.status.observedGeneration < generation then
  hs.message = "The controller has not seen generation " .. generation .. " yet"
  return hs
end
local ready = nil
for _, c in ipairs(obj.status.conditions) do
  if (c.type == "Accepted" or c.type == "ResolvedRefs" or c.type == "Programmed") and c.status == "False" then
    return { status = "Degraded", message = c.reason .. ": " .. (c.message or "") }
  end
  if c.type == "Ready" then
    ready = c
  end
end
if ready ~= nil and ready.status == "True" then
  return { status = "Healthy", message = ready.message or "Ready" }
end
if ready ~= nil then
  hs.message = ready.reason .. ": " .. (ready.message or "")
end
return hs
