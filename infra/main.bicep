// Subject Assistant export service: one resource group holds everything.
//
//   Flex Consumption plan (FC1, Linux) + function app (Python 3.11)
//   storage account (the app's own: host state, deployment package, export queue,
//     export table, manifest container) with shared keys disabled
//   user-assigned managed identity with data-plane roles on that account only
//   Log Analytics workspace + workspace-based Application Insights (Entra auth only)
//   alert rules on the app's telemetry and the action group that e-mails the operators
//
// This file declares the parameters and calls one module per part, in app/:
//   app/identity.bicep    user-assigned managed identity
//   app/storage.bicep     storage account, its services, containers, queues, table, lifecycle rule
//   app/monitoring.bicep  Log Analytics workspace + Application Insights
//   app/rbac.bicep        the identity's role assignments
//   app/plan.bicep        Flex Consumption plan
//   app/api.bicep         function app, its app settings and publishing policies
//   app/alerts.bicep      action group + log alert rules (docs/OPERATIONS.md says what to do)
//
// Layout and API versions follow Azure-Samples/functions-quickstart-python-http-azd
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

@description('E-mail addresses the alerts go to (docs/OPERATIONS.md lists the alerts). Empty: the alerts still fire and show in the portal, but nobody is e-mailed.')
param alertEmails array = []

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

@description('ML_PROBLEM_TICKS: polls an ML task may stay in problem without num_images (its submission failed) before the export fails.')
param mlProblemTicks string = '3'

@description('ML_SERVICE_ALLOW_HTTP: opt-in for a plain-http ML service on a private network (true/false).')
param mlServiceAllowHttp string = 'false'

@description('AUTH_RETRY_SECONDS: most an API request waits in total for Panoptes retries while checking access.')
param authRetrySeconds string = '3'

@description('UNKNOWN_TOKEN_LOOKUPS_PER_SECOND: per instance, access tokens in no cache checked with Panoptes a second (429 beyond).')
param unknownTokenLookupsPerSecond string = '20'

@description('FUNCTIONS_REQUEST_BODY_SIZE_LIMIT: the host refuses larger request bodies unread (the API takes at most 64 KiB).')
param requestBodySizeLimit string = '1048576'

@description('CALLBACK_RETRY_HOURS: how long a callback to a caller is retried with backoff before it is given up.')
param callbackRetryHours string = '24'

@description('CALLBACK_TIMEOUT_SECONDS: timeout of one callback attempt.')
param callbackTimeoutSeconds string = '10'

@description('RESULTS_ALLOWED_HOSTS: hosts the detections file may come from (https; *. for subdomains).')
param resultsAllowedHosts string = '*.blob.core.windows.net'

@description('RESULTS_MAX_MEGABYTES: largest detections file the summary reads.')
param resultsMaxMegabytes string = '2048'

@description('PANOPTES_OAUTH_CLIENT_ID: application id of the Panoptes OAuth application the page signs in with (implicit grant; redirect URI https://<app host>/).')
@minLength(1)
param panoptesOauthClientId string

@description('RESULTS_DOWNLOAD_SECONDS: total time to download and summarise one detections file.')
param resultsDownloadSeconds string = '300'

@description('ML_NOT_FOUND_TICKS: consecutive 404s from the ML service before ml_task_not_found (1-100).')
param mlNotFoundTicks string = '3'

@description('STUCK_EXPORT_MINUTES: a queued/building export untouched this long is re-queued once, then failed.')
param stuckExportMinutes string = '30'

@description('LIKELY_EMPTY_CONFIDENCE: an image is likely empty when its max_detection_conf is at most this (the Subject Assistant default filter at 0.5).')
param likelyEmptyConfidence string = '0.5'

@description('RESULTS_CSV_MINUTES: lifetime of the read-only SAS of results_csv_url, minted on each read (1-60).')
param resultsCsvMinutes string = '60'

@description('PAGE_REFRESH_SECONDS: how often the page refreshes its subject sets while an export is active (0.05-600).')
param pageRefreshSeconds string = '3'
// ---------------------------------------------------------------------------------
// Names
// ---------------------------------------------------------------------------------

// Same token as in the name defaults above (parameter defaults cannot use variables).
var resourceToken = uniqueString(subscription().id, resourceGroup().id, environmentName)
var allTags = union(tags, {
  project: 'subject-assistant-export'
  environment: environmentName
})

var identityName = 'id-subject-assistant-${environmentName}-${take(resourceToken, 6)}'
var logAnalyticsName = 'log-subject-assistant-${environmentName}-${take(resourceToken, 6)}'
var appInsightsName = 'appi-subject-assistant-${environmentName}-${take(resourceToken, 6)}'
var planName = 'plan-subject-assistant-${environmentName}-${take(resourceToken, 6)}'
var actionGroupName = 'ag-subject-assistant-${environmentName}-${take(resourceToken, 6)}'

// Flex Consumption deploys the app package from this container (identity access).
var deploymentContainerName = 'app-package-${take(resourceToken, 7)}'

// ---------------------------------------------------------------------------------
// Modules. Every name is decided here and passed down, so each module's parameters
// are known when the deployment starts (what-if sees inside every module). A module
// that uses another module's resource looks it up by name (`existing`) and lists
// that module in dependsOn.
// ---------------------------------------------------------------------------------

module identity 'app/identity.bicep' = {
  name: 'subject-assistant-identity'
  params: {
    name: identityName
    location: location
    tags: allTags
  }
}

module storage 'app/storage.bicep' = {
  name: 'subject-assistant-storage'
  params: {
    name: storageAccountName
    location: location
    tags: allTags
    sku: storageSku
    deploymentContainerName: deploymentContainerName
    manifestContainerName: manifestContainerName
    manifestRetentionDays: manifestRetentionDays
  }
}

module monitoring 'app/monitoring.bicep' = {
  name: 'subject-assistant-monitoring'
  params: {
    logAnalyticsName: logAnalyticsName
    appInsightsName: appInsightsName
    location: location
    tags: allTags
    logRetentionDays: logRetentionDays
  }
}

module alerts 'app/alerts.bicep' = {
  name: 'subject-assistant-alerts'
  params: {
    appInsightsName: appInsightsName
    actionGroupName: actionGroupName
    location: location
    tags: allTags
    alertEmails: alertEmails
    namePrefix: 'subject-assistant-${environmentName}'
  }
  dependsOn: [
    monitoring
  ]
}

module rbac 'app/rbac.bicep' = {
  name: 'subject-assistant-rbac'
  params: {
    storageAccountName: storageAccountName
    identityName: identityName
    appInsightsName: appInsightsName
  }
  dependsOn: [
    identity
    storage
    monitoring
  ]
}

module plan 'app/plan.bicep' = {
  name: 'subject-assistant-plan'
  params: {
    name: planName
    location: location
    tags: allTags
  }
}

module api 'app/api.bicep' = {
  name: 'subject-assistant-api'
  params: {
    name: functionAppName
    location: location
    tags: allTags
    planName: planName
    identityName: identityName
    storageAccountName: storageAccountName
    appInsightsName: appInsightsName
    deploymentContainerName: deploymentContainerName
    instanceMemoryMB: instanceMemoryMB
    maximumInstanceCount: maximumInstanceCount
    allowedOrigins: allowedOrigins
    panoptesUrl: panoptesUrl
    mlServiceUrl: mlServiceUrl
    mlServiceCallerId: mlServiceCallerId
    subjectAssistantExternalUrl: subjectAssistantExternalUrl
    manifestContainerName: manifestContainerName
    tokenEncryptionKey: tokenEncryptionKey
    tokenEncryptionKeyPrevious: tokenEncryptionKeyPrevious
    mlPollSchedule: mlPollSchedule
    panoptesPageConcurrency: panoptesPageConcurrency
    panoptesTimeoutSeconds: panoptesTimeoutSeconds
    panoptesRetries: panoptesRetries
    panoptesRetryBackoffSeconds: panoptesRetryBackoffSeconds
    authCacheSeconds: authCacheSeconds
    mlTimeoutSeconds: mlTimeoutSeconds
    manifestSasHours: manifestSasHours
    transientRetryHours: transientRetryHours
    retryDelaySeconds: retryDelaySeconds
    buildLeaseSeconds: buildLeaseSeconds
    mlPollConcurrency: mlPollConcurrency
    mlTaskDeadlineDays: mlTaskDeadlineDays
    mlNotFoundTicks: mlNotFoundTicks
    stuckExportMinutes: stuckExportMinutes
    likelyEmptyConfidence: likelyEmptyConfidence
    resultsCsvMinutes: resultsCsvMinutes
    pageRefreshSeconds: pageRefreshSeconds
    mlProblemTicks: mlProblemTicks
    mlServiceAllowHttp: mlServiceAllowHttp
    authRetrySeconds: authRetrySeconds
    unknownTokenLookupsPerSecond: unknownTokenLookupsPerSecond
    callbackRetryHours: callbackRetryHours
    callbackTimeoutSeconds: callbackTimeoutSeconds
    requestBodySizeLimit: requestBodySizeLimit
    resultsAllowedHosts: resultsAllowedHosts
    resultsMaxMegabytes: resultsMaxMegabytes
    resultsDownloadSeconds: resultsDownloadSeconds
    panoptesOauthClientId: panoptesOauthClientId
  }
  dependsOn: [
    plan
    identity
    // The host needs its storage roles and the package container from the first start.
    storage
    monitoring
    rbac
  ]
}

// ---------------------------------------------------------------------------------
// Outputs (no secrets)
// ---------------------------------------------------------------------------------

output functionAppName string = api.outputs.name
output defaultHostName string = api.outputs.defaultHostName
output storageAccountName string = storage.outputs.name
output identityClientId string = identity.outputs.clientId
