// The function app's own storage account (host state, deployment package, export
// queue and its poison queue, export table, manifest container) with shared keys
// disabled, and the lifecycle rule that deletes old manifests.
//
// Child resources are top-level with `parent:` (not nested) so that offline parsers
// (pycep, checkov) see each of them.

@description('Storage account name (main.bicep: storageAccountName).')
param name string

@description('Azure region.')
param location string

@description('Tags of the account.')
param tags object

@description('Storage redundancy (main.bicep: storageSku).')
param sku string

@description('Container Flex Consumption deploys the app package from.')
param deploymentContainerName string

@description('Manifest container (main.bicep: manifestContainerName).')
param manifestContainerName string

@description('Days after its last change a manifest blob is deleted (main.bicep: manifestRetentionDays).')
param manifestRetentionDays int

// shared/names.py: EXPORT_QUEUE, EXPORT_POISON_QUEUE, EXPORT_REDRIVEN_QUEUE, CALLBACK_QUEUE,
// CALLBACK_POISON_QUEUE, EXPORT_TABLE.
var exportQueueName = 'subject-assistant-exports'
var exportPoisonQueueName = 'subject-assistant-exports-poison'
var exportRedrivenQueueName = 'subject-assistant-exports-redriven'
var callbackQueueName = 'subject-assistant-callbacks'
var callbackPoisonQueueName = 'subject-assistant-callbacks-poison'
var exportTableName = 'SubjectAssistantExports'

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  // checkov:skip=CKV_AZURE_35: Network default action Allow: Flex Consumption without VNet integration reaches its storage over the public endpoint; every request needs Entra auth (shared keys off).
  // checkov:skip=CKV_AZURE_59: Public endpoint needed for the same reason (no VNet or private endpoints in this deployment).
  // checkov:skip=CKV_AZURE_206: Redundancy is the storageSku parameter; LRS by default (small, re-creatable state).
  // checkov:skip=CKV_AZURE_43: The name is a parameter (min 3, max 24; default stsa + uniqueString, lowercase alphanumeric), which checkov cannot evaluate.
  name: name
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: {
    name: sku
  }
  properties: {
    accessTier: 'Hot'
    allowBlobPublicAccess: false
    allowCrossTenantReplication: false
    allowSharedKeyAccess: false
    defaultToOAuthAuthentication: true
    dnsEndpointType: 'Standard'
    minimumTlsVersion: 'TLS1_2'
    publicNetworkAccess: 'Enabled'
    supportsHttpsTrafficOnly: true
    networkAcls: {
      bypass: 'AzureServices'
      defaultAction: 'Allow'
    }
    encryption: {
      keySource: 'Microsoft.Storage'
      services: {
        blob: {
          enabled: true
        }
        file: {
          enabled: true
        }
        queue: {
          enabled: true
          keyType: 'Account'
        }
        table: {
          enabled: true
          keyType: 'Account'
        }
      }
    }
  }
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: storage
  name: 'default'
  properties: {
    deleteRetentionPolicy: {
      enabled: true
      days: 7
    }
    containerDeleteRetentionPolicy: {
      enabled: true
      days: 7
    }
  }
}

resource deploymentContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: deploymentContainerName
  properties: {
    publicAccess: 'None'
  }
}

resource manifestContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: manifestContainerName
  properties: {
    publicAccess: 'None'
  }
}

resource queueService 'Microsoft.Storage/storageAccounts/queueServices@2023-05-01' = {
  parent: storage
  name: 'default'
}

resource exportQueue 'Microsoft.Storage/storageAccounts/queueServices/queues@2023-05-01' = {
  parent: queueService
  name: exportQueueName
}

// The Functions host moves a message here after host.json maxDequeueCount failures.
resource exportPoisonQueue 'Microsoft.Storage/storageAccounts/queueServices/queues@2023-05-01' = {
  parent: queueService
  name: exportPoisonQueueName
}

// Deliveries of callbacks to callers (exports/delivery.py), and the host's poison queue for them.
resource callbackQueue 'Microsoft.Storage/storageAccounts/queueServices/queues@2023-05-01' = {
  parent: queueService
  name: callbackQueueName
}

resource callbackPoisonQueue 'Microsoft.Storage/storageAccounts/queueServices/queues@2023-05-01' = {
  parent: queueService
  name: callbackPoisonQueueName
}

// The operator's re-drive (`python -m ops redrive`) keeps here each poison message it sent back.
resource exportRedrivenQueue 'Microsoft.Storage/storageAccounts/queueServices/queues@2023-05-01' = {
  parent: queueService
  name: exportRedrivenQueueName
}

resource tableService 'Microsoft.Storage/storageAccounts/tableServices@2023-05-01' = {
  parent: storage
  name: 'default'
}

resource exportTable 'Microsoft.Storage/storageAccounts/tableServices/tables@2023-05-01' = {
  parent: tableService
  name: exportTableName
}

// Manifests are only needed until the ML service has read them (SAS <= 7 days).
resource manifestLifecycle 'Microsoft.Storage/storageAccounts/managementPolicies@2023-05-01' = {
  parent: storage
  name: 'default'
  properties: {
    policy: {
      rules: [
        {
          name: 'delete-old-manifests'
          enabled: true
          type: 'Lifecycle'
          definition: {
            filters: {
              blobTypes: [
                'blockBlob'
              ]
              prefixMatch: [
                '${manifestContainerName}/'
              ]
            }
            actions: {
              baseBlob: {
                delete: {
                  daysAfterModificationGreaterThan: manifestRetentionDays
                }
              }
            }
          }
        }
      ]
    }
  }
  dependsOn: [
    manifestContainer
  ]
}

output name string = storage.name
