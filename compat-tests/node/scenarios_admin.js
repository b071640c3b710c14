// The admin scenarios of the kafkajs suite: admin-topics and admin-configs.
'use strict'

const assert = require('node:assert/strict')
const { ConfigResourceTypes, ConfigSource } = require('kafkajs')
const { WAIT_MS, prefix, withAdmin, createTopic, waitForAsync } = require('./common')

async function adminTopics () {
  const topic = `${prefix}-admin`
  return withAdmin(async admin => {
    assert.equal(await createTopic(admin, topic, 3), true, 'createTopics did not create')
    const { brokers } = await admin.describeCluster()
    const { topics } = await admin.fetchTopicMetadata({ topics: [topic] })
    assert.equal(topics[0].partitions.length, 3, 'partition count')
    for (const p of topics[0].partitions) assert.equal(p.leader, brokers[0].nodeId, 'leader')
    assert.ok((await admin.listTopics()).includes(topic), 'created topic not listed')
    assert.equal(await createTopic(admin, topic, 3), false, 're-creating an existing topic')
    await admin.deleteTopics({ topics: [topic], timeout: WAIT_MS })
    await waitForAsync(async () => !(await admin.listTopics()).includes(topic),
      'the deleted topic to leave the list')
    await assert.rejects(admin.fetchTopicMetadata({ topics: [topic] }),
      err => err.type === 'UNKNOWN_TOPIC_OR_PARTITION', 'describing the deleted topic')
  })
}

async function adminConfigs () {
  const topic = `${prefix}-configs`
  const describe = async (admin, type, name) => {
    const { resources } = await admin.describeConfigs({
      resources: [{ type, name }], includeSynonyms: false
    })
    assert.equal(resources[0].errorCode, 0, `describe ${name}: ${resources[0].errorMessage}`)
    return Object.fromEntries(resources[0].configEntries.map(e => [e.configName, e]))
  }
  return withAdmin(async admin => {
    await createTopic(admin, topic, 1, [{ name: 'retention.ms', value: '3600000' }])
    let configs = await describe(admin, ConfigResourceTypes.TOPIC, topic)
    assert.equal(configs['retention.ms']?.configValue, '3600000', 'retention.ms after create')
    assert.equal(configs['retention.ms'].configSource, ConfigSource.TOPIC_CONFIG, 'retention.ms source')
    assert.equal(configs['cleanup.policy']?.configValue, 'delete', 'cleanup.policy')
    // kafkajs has only the legacy AlterConfigs (it replaces the topic's whole dynamic config).
    await admin.alterConfigs({
      validateOnly: false,
      resources: [{
        type: ConfigResourceTypes.TOPIC, name: topic, configEntries: [{ name: 'retention.ms', value: '7200000' }]
      }]
    })
    configs = await describe(admin, ConfigResourceTypes.TOPIC, topic)
    assert.equal(configs['retention.ms']?.configValue, '7200000', 'retention.ms after alter')
    const { brokers } = await admin.describeCluster()
    const brokerConfigs = await describe(admin, ConfigResourceTypes.BROKER, String(brokers[0].nodeId))
    assert.ok(brokerConfigs['num.partitions'], 'broker config lacks num.partitions')
    await admin.deleteTopics({ topics: [topic], timeout: WAIT_MS })
  })
}

module.exports = { adminTopics, adminConfigs }
