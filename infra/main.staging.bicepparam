// Staging: against panoptes-staging. Deploy with
//   az deployment group create -g <rg> -f infra/main.bicep -p infra/main.staging.bicepparam
// Values that are secret or site-specific come from environment variables (see docs/DEPLOY.md);
// nothing secret is written in this file.
using './main.bicep'

param environmentName = 'staging'
param panoptesUrl = 'https://panoptes-staging.zooniverse.org'
param mlServiceUrl = readEnvironmentVariable('SUBJECT_ASSISTANT_ML_SERVICE_URL')
param mlServiceCallerId = readEnvironmentVariable('SUBJECT_ASSISTANT_ML_SERVICE_CALLER_ID')
param tokenEncryptionKey = readEnvironmentVariable('TOKEN_ENCRYPTION_KEY')
param tokenEncryptionKeyPrevious = readEnvironmentVariable('TOKEN_ENCRYPTION_KEY_PREVIOUS', '')
param panoptesOauthClientId = readEnvironmentVariable('PANOPTES_OAUTH_CLIENT_ID')
param allowedOrigins = [
  'https://subject-assistant.zooniverse.org'
]
param maximumInstanceCount = 40
param manifestRetentionDays = 14
