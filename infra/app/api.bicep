// The function app (Python 3.11 on the Flex Consumption plan of plan.bicep), its app
// settings and its publishing policies. It runs as the identity of identity.bicep and
// keeps host state and its deployment package in the account of storage.bicep;
// main.bicep deploys this module after those, monitoring.bicep and rbac.bicep.

@description('Function app name (main.bicep: functionAppName).')
param name string

@description('Azure region.')
param location string

@description('Tags of the app.')
param tags object

@description('Flex Consumption plan (created by plan.bicep).')
param planName string

@description('The app\'s user-assigned identity (created by identity.bicep).')
param identityName string

@description('The app\'s storage account (created by storage.bicep).')
param storageAccountName string

@description('Application Insights (created by monitoring.bicep).')
param appInsightsName string

@description('Container in the app\'s storage account that Flex Consumption deploys the package from (created by storage.bicep).')
param deploymentContainerName string

@description('Memory of one Flex Consumption instance, in MB (main.bicep: instanceMemoryMB).')
param instanceMemoryMB int

@description('Most instances the app scales out to (main.bicep: maximumInstanceCount).')
param maximumInstanceCount int

@description('Browser origins allowed by CORS (main.bicep: allowedOrigins).')
param allowedOrigins array

// The service's settings (exports/settings.py), passed from the main.bicep
// parameters of the same name; their meaning and defaults are declared there.
param panoptesUrl string
param mlServiceUrl string
param mlServiceCallerId string
param subjectAssistantExternalUrl string
param manifestContainerName string
@secure()
param tokenEncryptionKey string
@secure()
param tokenEncryptionKeyPrevious string
param mlPollSchedule string
param panoptesPageConcurrency string
param panoptesTimeoutSeconds string
param panoptesRetries string
param panoptesRetryBackoffSeconds string
param authCacheSeconds string
param mlTimeoutSeconds string
param manifestSasHours string
param transientRetryHours string
param retryDelaySeconds string
param buildLeaseSeconds string
param mlPollConcurrency string
param mlTaskDeadlineDays string
param mlNotFoundTicks string
param stuckExportMinutes string
param likelyEmptyConfidence string
param resultsCsvMinutes string
param pageRefreshSeconds string
param mlProblemTicks string
param mlServiceAllowHttp string
param authRetrySeconds string
param unknownTokenLookupsPerSecond string
param callbackRetryHours string
param callbackTimeoutSeconds string
param requestBodySizeLimit string
param resultsAllowedHosts string
param resultsMaxMegabytes string
param resultsDownloadSeconds string
param panoptesOauthClientId string

resource plan 'Microsoft.Web/serverfarms@2023-12-01' existing = {
  name: planName
}

resource appIdentity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' existing = {
  name: identityName
}

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

resource appInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: appInsightsName
}

// The host needs its storage roles (rbac.bicep) and the package container
// (storage.bicep) from the first start: main.bicep deploys this module after both.
resource functionApp 'Microsoft.Web/sites@2023-12-01' = {
  // checkov:skip=CKV_AZURE_17: No client certificates: callers authenticate with Panoptes bearer tokens from a browser SPA.
  // checkov:skip=CKV_AZURE_18: HTTP version is managed by the Flex Consumption platform (not exposed for Flex apps).
  // checkov:skip=CKV_AZURE_67: HTTP version is managed by the Flex Consumption platform (not exposed for Flex apps).
  // checkov:skip=CKV_AZURE_212: Flex Consumption scales from zero on demand; no always-ready instances for a batch service.
  // checkov:skip=CKV_AZURE_213: Platform health check is not used on Flex Consumption; GET /api/health serves external probes.
  // checkov:skip=CKV_AZURE_222: Public access is required: the Subject Assistant SPA calls the API from browsers.
  name: name
  location: location
  tags: tags
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
}

// Replaces all app settings on every deployment: change settings in main.bicep or in
// the .bicepparam files, not only with `az functionapp config appsettings set`.
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
    // host.json sets telemetryMode OpenTelemetry; the worker attaches each invocation's trace
    // context and streams its own logs (no duplicates through the host). The app configures
    // the exporter itself on first use (shared/telemetry.py, docs/DECISIONS.md).
    PYTHON_ENABLE_OPENTELEMETRY: 'true'

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
    RESULTS_CSV_MINUTES: resultsCsvMinutes
    PAGE_REFRESH_SECONDS: pageRefreshSeconds
    ML_PROBLEM_TICKS: mlProblemTicks
    ML_SERVICE_ALLOW_HTTP: mlServiceAllowHttp
    AUTH_RETRY_SECONDS: authRetrySeconds
    UNKNOWN_TOKEN_LOOKUPS_PER_SECOND: unknownTokenLookupsPerSecond
    // Callbacks go only to https on public addresses in Azure (the opt-in is for local runs).
    CALLBACK_ALLOW_PRIVATE: 'false'
    CALLBACK_RETRY_HOURS: callbackRetryHours
    CALLBACK_TIMEOUT_SECONDS: callbackTimeoutSeconds
    // The host reads a request's body before the worker sees it: refuse absurd ones unread.
    FUNCTIONS_REQUEST_BODY_SIZE_LIMIT: requestBodySizeLimit
    RESULTS_ALLOWED_HOSTS: resultsAllowedHosts
    RESULTS_MAX_MEGABYTES: resultsMaxMegabytes
    RESULTS_DOWNLOAD_SECONDS: resultsDownloadSeconds
    PANOPTES_OAUTH_CLIENT_ID: panoptesOauthClientId
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

output name string = functionApp.name
output defaultHostName string = functionApp.properties.defaultHostName
