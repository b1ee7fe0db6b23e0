// Production: against www.zooniverse.org. Deploy with
//   az deployment group create -g <rg> -f infra/main.bicep -p infra/main.production.bicepparam
// Values that are secret or site-specific come from environment variables (see docs/DEPLOY.md);
// nothing secret is written in this file.
using './main.bicep'

param environmentName = 'production'
param panoptesUrl = 'https://www.zooniverse.org'
param mlServiceUrl = readEnvironmentVariable('SUBJECT_ASSISTANT_ML_SERVICE_URL')
param mlServiceCallerId = readEnvironmentVariable('SUBJECT_ASSISTANT_ML_SERVICE_CALLER_ID')
param tokenEncryptionKey = readEnvironmentVariable('TOKEN_ENCRYPTION_KEY')
param tokenEncryptionKeyPrevious = readEnvironmentVariable('TOKEN_ENCRYPTION_KEY_PREVIOUS', '')
param panoptesOauthClientId = readEnvironmentVariable('PANOPTES_OAUTH_CLIENT_ID')
param allowedOrigins = [
  'https://subject-assistant.zooniverse.org'
]
param maximumInstanceCount = 100
param manifestRetentionDays = 30
