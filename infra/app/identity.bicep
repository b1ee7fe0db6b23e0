// The function app's user-assigned managed identity. Its data-plane roles are in
// rbac.bicep; the function app (api.bicep) runs as it.

@description('Identity name (main.bicep: id-subject-assistant-<env>-<token>).')
param name string

@description('Azure region.')
param location string

@description('Tags of the identity.')
param tags object

resource appIdentity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: name
  location: location
  tags: tags
}

output name string = appIdentity.name
output clientId string = appIdentity.properties.clientId
output principalId string = appIdentity.properties.principalId
