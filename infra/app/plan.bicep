// Flex Consumption plan (FC1, Linux) that hosts the function app (api.bicep).

@description('Plan name.')
param name string

@description('Azure region.')
param location string

@description('Tags of the plan.')
param tags object

resource plan 'Microsoft.Web/serverfarms@2023-12-01' = {
  // checkov:skip=CKV_AZURE_225: Not zone redundant: a batch export service that tolerates a zonal outage by retrying (queue and table state survive).
  name: name
  location: location
  tags: tags
  kind: 'functionapp'
  sku: {
    name: 'FC1'
    tier: 'FlexConsumption'
  }
  properties: {
    reserved: true
  }
}

output name string = plan.name
