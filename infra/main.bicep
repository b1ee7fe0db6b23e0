// Subject Assistant export service: one resource group holds everything.
//
//   Flex Consumption plan (FC1, Linux) + function app (Python 3.11)
//   storage account (the app's own: host state, deployment package, export queue,
//     export table, manifest container) with shared keys disabled
//   user-assigned managed identity with data-plane roles on that account only
//   Log Analytics workspace + workspace-based Application Insights (Entra auth only)
//
// Shapes and API versions follow Azure-Samples/functions-quickstart-python-http-azd
// (infra/), written as plain resources (no registry modules) so that offline checks
// (tests/infra, checkov) see every property. Names that the code also uses come from
// shared/names.py and exports/settings.py; tests/infra/test_bicep.py checks they agree.

targetScope = 'resourceGroup'

// ---------------------------------------------------------------------------------
// Where and what
// ---------------------------------------------------------------------------------

@description('Short environment name, used in resource names and tags (e.g. staging, production).')
@minLength(1)
@maxLength(12)
param environmentName string

@description('Azure region (must offer Flex Consumption). Defaults to the resource group\'s region.')
param location string = resourceGroup().location

@description('Tags added to every resource.')
param tags object = {}

@description('Function app name (globally unique: it is the <name>.azurewebsites.net host).')
@minLength(2)
@maxLength(60)
param functionAppName string = 'func-subject-assistant-${environmentName}-${take(uniqueString(subscription().id, resourceGroup().id, environmentName), 6)}'

@description('Storage account name (3-24 lowercase letters and digits, globally unique).')
@minLength(3)
@maxLength(24)
param storageAccountName string = 'stsa${uniqueString(subscription().id, resourceGroup().id, environmentName)}'

@description('Storage redundancy.')
@allowed([
  'Standard_LRS'
  'Standard_ZRS'
  'Standard_GRS'
  'Standard_RAGRS'
])
param storageSku string = 'Standard_LRS'

@description('Memory of one Flex Consumption instance, in MB.')
@allowed([
  512
  2048
  4096
])
param instanceMemoryMB int = 2048

@description('Most instances the app scales out to (caps the load put on Panoptes and the ML service).')
@minValue(1)
@maxValue(1000)
param maximumInstanceCount int = 100

@description('Days Log Analytics keeps logs.')
@minValue(30)
@maxValue(730)
param logRetentionDays int = 30

@description('Days after its last change a manifest blob is deleted. Must outlive the manifest SAS (MANIFEST_SAS_HOURS, at most 7 days).')
@minValue(8)
@maxValue(3650)
param manifestRetentionDays int = 30

// ---------------------------------------------------------------------------------
// App settings (one parameter per setting in exports/settings.py; optional
// ones default to the code's default, as strings, exactly as the code would read them)
// ---------------------------------------------------------------------------------

@description('PANOPTES_URL: Panoptes base URL (API under /api). Staging: https://panoptes-staging.zooniverse.org.')
param panoptesUrl string = 'https://www.zooniverse.org'

@description('SUBJECT_ASSISTANT_ML_SERVICE_URL: MegaDetector batch API base, e.g. https://host/v4/camera-trap/detection-batch (https; see ML_SERVICE_ALLOW_HTTP).')
@minLength(1)
param mlServiceUrl string

@description('SUBJECT_ASSISTANT_ML_SERVICE_CALLER_ID: the `caller` on the ML service\'s allowlist.')
@minLength(1)
param mlServiceCallerId string

@description('SUBJECT_ASSISTANT_EXTERNAL_URL: prefix of the Subject Assistant link; the ML task id is appended.')
param subjectAssistantExternalUrl string = 'https://subject-assistant.zooniverse.org/#/tasks/'

@description('SUBJECT_ASSISTANT_AZURE_CONTAINER_NAME: blob container for manifests (created here, in the app\'s storage account).')
@minLength(3)
@maxLength(63)
param manifestContainerName string = 'subject-assistant-manifests'

@description('TOKEN_ENCRYPTION_KEY: secret (>= 32 chars of random text) from which the key that encrypts queued Panoptes tokens is derived.')
@secure()
@minLength(32)
param tokenEncryptionKey string

@description('TOKEN_ENCRYPTION_KEY_PREVIOUS: during a key rotation, the old TOKEN_ENCRYPTION_KEY (still accepted for decryption); empty otherwise.')
@secure()
param tokenEncryptionKeyPrevious string = ''

@description('ML_POLL_SCHEDULE: NCRONTAB (6 fields, seconds first) of the ML poller timer.')
param mlPollSchedule string = '0 */10 * * * *'

@description('Browser origins allowed by CORS (platform CORS and ALLOWED_ORIGINS). Never \'*\': the API takes bearer tokens from browsers.')
@minLength(1)
param allowedOrigins array = [
  'https://subject-assistant.zooniverse.org'
]

@description('PANOPTES_PAGE_CONCURRENCY: subject pages fetched from Panoptes at once during an export (1-32).')
param panoptesPageConcurrency string = '8'

@description('PANOPTES_TIMEOUT_SECONDS: timeout of one Panoptes request (1-120).')
param panoptesTimeoutSeconds string = '30'

@description('PANOPTES_RETRIES: retries of one Panoptes request after a 5xx, 429 or network error (0-10).')
param panoptesRetries string = '4'

@description('PANOPTES_RETRY_BACKOFF_SECONDS: first backoff between Panoptes retries; a 429\'s Retry-After wins (0-60).')
param panoptesRetryBackoffSeconds string = '0.5'

@description('AUTH_CACHE_SECONDS: how long a token\'s user and role lookups are reused (0-300).')
param authCacheSeconds string = '60'

@description('ML_TIMEOUT_SECONDS: timeout of one ML service request (1-300).')
param mlTimeoutSeconds string = '60'

@description('MANIFEST_SAS_HOURS: lifetime of the manifest\'s read-only SAS (1-168).')
param manifestSasHours string = '4'

@description('TRANSIENT_RETRY_HOURS: how long an export keeps retrying outages before failing (0.01-168).')
param transientRetryHours string = '24'

@description('RETRY_DELAY_SECONDS: first delay before an export retries a transient fault; doubles each time, at most 30 minutes (0-3600).')
param retryDelaySeconds string = '30'

@description('BUILD_LEASE_SECONDS: how long a worker\'s claim on an export lasts without renewal; a crashed worker\'s export is taken over after it.')
param buildLeaseSeconds string = '300'

@description('ML_POLL_CONCURRENCY: ML task status requests in flight at once during a poll tick (1-256).')
param mlPollConcurrency string = '32'

@description('ML_TASK_DEADLINE_DAYS: an export whose ML status and message have not changed this long fails with deadline_exceeded.')
param mlTaskDeadlineDays string = '3'

@description('ML_PROBLEM_TICKS: polls an ML task may stay in problem with the same message before the export fails.')
param mlProblemTicks string = '36'

@description('ML_SERVICE_ALLOW_HTTP: opt-in for a plain-http ML service on a private network (true/false).')
param mlServiceAllowHttp string = 'false'

@description('AUTH_RETRY_SECONDS: most an API request waits in total for Panoptes retries while checking access.')
param authRetrySeconds string = '3'

@description('RESULTS_ALLOWED_HOSTS: hosts the detections file may come from (https; *. for subdomains).')
param resultsAllowedHosts string = '*.blob.core.windows.net'

@description('RESULTS_MAX_MEGABYTES: largest detections file the summary reads.')
param resultsMaxMegabytes string = '2048'

@description('RESULTS_DOWNLOAD_SECONDS: total time to download and summarise one detections file.')
param resultsDownloadSeconds string = '300'

@description('ML_NOT_FOUND_TICKS: consecutive 404s from the ML service before ml_task_not_found (1-100).')
param mlNotFoundTicks string = '3'

@description('STUCK_EXPORT_MINUTES: a queued/building export untouched this long is re-queued once, then failed.')
param stuckExportMinutes string = '30'

@description('LIKELY_EMPTY_CONFIDENCE: images whose max_detection_conf is below this count as likely empty (0-1).')
param likelyEmptyConfidence string = '0.2'

// ---------------------------------------------------------------------------------
// Fixed names (shared/names.py) and built-in role ids
// ---------------------------------------------------------------------------------

// Same token as in the name defaults above (parameter defaults cannot use variables).
var resourceToken = uniqueString(subscription().id, resourceGroup().id, environmentName)
var allTags = union(tags, {
  project: 'subject-assistant-export'
  environment: environmentName
})

// shared/names.py: EXPORT_QUEUE, EXPORT_POISON_QUEUE, EXPORT_TABLE.
var exportQueueName = 'subject-assistant-exports'
var exportPoisonQueueName = 'subject-assistant-exports-poison'
var exportTableName = 'SubjectAssistantExports'

// Flex Consumption deploys the app package from this container (identity access).
var deploymentContainerName = 'app-package-${take(resourceToken, 7)}'

// Built-in role definition ids: data-plane roles only, nothing broader.
var roleIds = {
  storageBlobDataOwner: 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b'
  storageQueueDataContributor: '974c5e8b-45b9-4653-ba55-5f855dd0fb88'
  storageTableDataContributor: '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3'
  monitoringMetricsPublisher: '3913510d-42f4-4e42-8a64-420c390055eb'
}

// ---------------------------------------------------------------------------------
// Identity
// ---------------------------------------------------------------------------------

resource appIdentity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: 'id-subject-assistant-${environmentName}-${take(resourceToken, 6)}'
  location: location
  tags: allTags
}

// ---------------------------------------------------------------------------------
// Storage: the function app's own account (host, deployment, queue, table, manifests)
// ---------------------------------------------------------------------------------

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  // checkov:skip=CKV_AZURE_35: Network default action Allow: Flex Consumption without VNet integration reaches its storage over the public endpoint; every request needs Entra auth (shared keys off).
  // checkov:skip=CKV_AZURE_59: Public endpoint needed for the same reason (no VNet or private endpoints in this deployment).
  // checkov:skip=CKV_AZURE_206: Redundancy is the storageSku parameter; LRS by default (small, re-creatable state).
  // checkov:skip=CKV_AZURE_43: The name is a parameter (min 3, max 24; default stsa + uniqueString, lowercase alphanumeric), which checkov cannot evaluate.
  name: storageAccountName
  location: location
  tags: allTags
  kind: 'StorageV2'
  sku: {
    name: storageSku
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

// Child resources are top-level with `parent:` (not nested) so that offline parsers
// (pycep, checkov) see each of them.

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

// ---------------------------------------------------------------------------------
// Monitoring (Entra-only ingestion: DisableLocalAuth)
// ---------------------------------------------------------------------------------

resource logAnalytics 'Microsoft.OperationalInsights/workspaces@2022-10-01' = {
  name: 'log-subject-assistant-${environmentName}-${take(resourceToken, 6)}'
  location: location
  tags: allTags
  properties: {
    sku: {
      name: 'PerGB2018'
    }
    retentionInDays: logRetentionDays
    features: {
      disableLocalAuth: true
    }
  }
}

resource appInsights 'Microsoft.Insights/components@2020-02-02' = {
  name: 'appi-subject-assistant-${environmentName}-${take(resourceToken, 6)}'
  location: location
  tags: allTags
  kind: 'web'
  properties: {
    Application_Type: 'web'
    WorkspaceResourceId: logAnalytics.id
    DisableLocalAuth: true
  }
}

// ---------------------------------------------------------------------------------
// Role assignments: the app's identity gets data-plane access to its own account and
// may publish telemetry; nothing broader (no Owner/Contributor/Storage Account Contributor).
// ---------------------------------------------------------------------------------

// Blob Data Owner (not Contributor): needed for user delegation keys (manifest SAS)
// and by the Flex Consumption deployment/host; scoped to this one account.
resource blobDataOwner 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storage.id, appIdentity.id, roleIds.storageBlobDataOwner)
  scope: storage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleIds.storageBlobDataOwner)
    principalId: appIdentity.properties.principalId
    principalType: 'ServicePrincipal'
  }
}

resource queueDataContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storage.id, appIdentity.id, roleIds.storageQueueDataContributor)
  scope: storage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleIds.storageQueueDataContributor)
    principalId: appIdentity.properties.principalId
    principalType: 'ServicePrincipal'
  }
}

resource tableDataContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storage.id, appIdentity.id, roleIds.storageTableDataContributor)
  scope: storage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleIds.storageTableDataContributor)
    principalId: appIdentity.properties.principalId
    principalType: 'ServicePrincipal'
  }
}

resource metricsPublisher 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(appInsights.id, appIdentity.id, roleIds.monitoringMetricsPublisher)
  scope: appInsights
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleIds.monitoringMetricsPublisher)
    principalId: appIdentity.properties.principalId
    principalType: 'ServicePrincipal'
  }
}

// ---------------------------------------------------------------------------------
// Hosting: Flex Consumption plan and the function app
// ---------------------------------------------------------------------------------

resource plan 'Microsoft.Web/serverfarms@2023-12-01' = {
  // checkov:skip=CKV_AZURE_225: Not zone redundant: a batch export service that tolerates a zonal outage by retrying (queue and table state survive).
  name: 'plan-subject-assistant-${environmentName}-${take(resourceToken, 6)}'
  location: location
  tags: allTags
  kind: 'functionapp'
  sku: {
    name: 'FC1'
    tier: 'FlexConsumption'
  }
  properties: {
    reserved: true
  }
}

resource functionApp 'Microsoft.Web/sites@2023-12-01' = {
  // checkov:skip=CKV_AZURE_17: No client certificates: callers authenticate with Panoptes bearer tokens from a browser SPA.
  // checkov:skip=CKV_AZURE_18: HTTP version is managed by the Flex Consumption platform (not exposed for Flex apps).
  // checkov:skip=CKV_AZURE_67: HTTP version is managed by the Flex Consumption platform (not exposed for Flex apps).
  // checkov:skip=CKV_AZURE_212: Flex Consumption scales from zero on demand; no always-ready instances for a batch service.
  // checkov:skip=CKV_AZURE_213: Platform health check is not used on Flex Consumption; GET /api/health serves external probes.
  // checkov:skip=CKV_AZURE_222: Public access is required: the Subject Assistant SPA calls the API from browsers.
  name: functionAppName
  location: location
  tags: allTags
  kind: 'functionapp,linux'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${appIdentity.id}': {}
    }
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    publicNetworkAccess: 'Enabled'
    siteConfig: {
      minTlsVersion: '1.2'
      scmMinTlsVersion: '1.2'
      ftpsState: 'Disabled'
      cors: {
        allowedOrigins: allowedOrigins
        supportCredentials: false
      }
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${storage.properties.primaryEndpoints.blob}${deploymentContainerName}'
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: appIdentity.id
          }
        }
      }
      scaleAndConcurrency: {
        instanceMemoryMB: instanceMemoryMB
        maximumInstanceCount: maximumInstanceCount
      }
      runtime: {
        name: 'python'
        version: '3.11'
      }
    }
  }
  dependsOn: [
    // The host needs its storage roles from the first start.
    blobDataOwner
    queueDataContributor
    tableDataContributor
    metricsPublisher
    deploymentContainer
  ]
}

// Replaces all app settings on every deployment: change settings here or in the
// .bicepparam files, not only with `az functionapp config appsettings set`.
// Flex Consumption rejects FUNCTIONS_WORKER_RUNTIME / FUNCTIONS_EXTENSION_VERSION /
// WEBSITE_RUN_FROM_PACKAGE: the runtime is functionAppConfig.runtime above.
resource appSettings 'Microsoft.Web/sites/config@2023-12-01' = {
  // checkov:skip=CKV_AZURE_13: False positive: key/value app settings, not siteConfig; Panoptes tokens are checked by the app.
  // checkov:skip=CKV_AZURE_63: False positive: key/value app settings, not siteConfig; logs go to Application Insights.
  // checkov:skip=CKV_AZURE_65: False positive: key/value app settings, not siteConfig; logs go to Application Insights.
  // checkov:skip=CKV_AZURE_66: False positive: key/value app settings, not siteConfig; logs go to Application Insights.
  // checkov:skip=CKV_AZURE_80: False positive: key/value app settings; the app runs Python, not .NET.
  // checkov:skip=CKV_AZURE_88: False positive: Flex Consumption does not use Azure Files (deployment is a blob container).
  // checkov:skip=CKV_AZURE_222: False positive: key/value app settings, not the site's network settings (see functionApp).
  parent: functionApp
  name: 'appsettings'
  properties: {
    // Identity-based host storage (shared/settings.py STORAGE_IDENTITY_SUFFIXES).
    AzureWebJobsStorage__blobServiceUri: storage.properties.primaryEndpoints.blob
    AzureWebJobsStorage__queueServiceUri: storage.properties.primaryEndpoints.queue
    AzureWebJobsStorage__tableServiceUri: storage.properties.primaryEndpoints.table
    AzureWebJobsStorage__credential: 'managedidentity'
    AzureWebJobsStorage__clientId: appIdentity.properties.clientId
    AZURE_CLIENT_ID: appIdentity.properties.clientId

    // Telemetry with Entra auth (Application Insights has local auth disabled).
    APPLICATIONINSIGHTS_CONNECTION_STRING: appInsights.properties.ConnectionString
    APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'ClientId=${appIdentity.properties.clientId};Authorization=AAD'

    // The service's settings (exports/settings.py).
    PANOPTES_URL: panoptesUrl
    SUBJECT_ASSISTANT_ML_SERVICE_URL: mlServiceUrl
    SUBJECT_ASSISTANT_ML_SERVICE_CALLER_ID: mlServiceCallerId
    SUBJECT_ASSISTANT_EXTERNAL_URL: subjectAssistantExternalUrl
    SUBJECT_ASSISTANT_AZURE_CONTAINER_NAME: manifestContainerName
    TOKEN_ENCRYPTION_KEY: tokenEncryptionKey
    TOKEN_ENCRYPTION_KEY_PREVIOUS: tokenEncryptionKeyPrevious
    ML_POLL_SCHEDULE: mlPollSchedule
    ALLOWED_ORIGINS: join(allowedOrigins, ',')
    PANOPTES_PAGE_CONCURRENCY: panoptesPageConcurrency
    PANOPTES_TIMEOUT_SECONDS: panoptesTimeoutSeconds
    PANOPTES_RETRIES: panoptesRetries
    PANOPTES_RETRY_BACKOFF_SECONDS: panoptesRetryBackoffSeconds
    AUTH_CACHE_SECONDS: authCacheSeconds
    ML_TIMEOUT_SECONDS: mlTimeoutSeconds
    MANIFEST_SAS_HOURS: manifestSasHours
    TRANSIENT_RETRY_HOURS: transientRetryHours
    RETRY_DELAY_SECONDS: retryDelaySeconds
    BUILD_LEASE_SECONDS: buildLeaseSeconds
    ML_POLL_CONCURRENCY: mlPollConcurrency
    ML_TASK_DEADLINE_DAYS: mlTaskDeadlineDays
    ML_NOT_FOUND_TICKS: mlNotFoundTicks
    STUCK_EXPORT_MINUTES: stuckExportMinutes
    LIKELY_EMPTY_CONFIDENCE: likelyEmptyConfidence
    ML_PROBLEM_TICKS: mlProblemTicks
    ML_SERVICE_ALLOW_HTTP: mlServiceAllowHttp
    AUTH_RETRY_SECONDS: authRetrySeconds
    RESULTS_ALLOWED_HOSTS: resultsAllowedHosts
    RESULTS_MAX_MEGABYTES: resultsMaxMegabytes
    RESULTS_DOWNLOAD_SECONDS: resultsDownloadSeconds
  }
}

// Deployment goes through Entra ID (Core Tools / az CLI tokens), never basic auth.
resource ftpBasicAuth 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2023-12-01' = {
  parent: functionApp
  name: 'ftp'
  // Required by the resource provider although missing from the type (Azure/bicep#7396).
  #disable-next-line BCP187
  location: location
  properties: {
    allow: false
  }
}

resource scmBasicAuth 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2023-12-01' = {
  parent: functionApp
  name: 'scm'
  // Required by the resource provider although missing from the type (Azure/bicep#7396).
  #disable-next-line BCP187
  location: location
  properties: {
    allow: false
  }
}

// ---------------------------------------------------------------------------------
// Outputs (no secrets)
// ---------------------------------------------------------------------------------

output functionAppName string = functionApp.name
output defaultHostName string = functionApp.properties.defaultHostName
output storageAccountName string = storage.name
output identityClientId string = appIdentity.properties.clientId
