// The consumer-group scenarios of the kafkajs suite: group-rebalance and commit-resume, and the
// group member they run; consumer-protocol and share-group are skipped.
'use strict'

const assert = require('node:assert/strict')
const {
  kafka, prefix, Skip, withAdmin, withProducer, createTopic, consumeGroup, waitFor
} = require('./common')

async function groupRebalance () {
  const topic = `${prefix}-group`
  const group = `${prefix}-group`
  const partitions = 4
  const count = 40
  await withAdmin(admin => createTopic(admin, topic, partitions))
  await withProducer({}, producer => producer.send({
    topic,
    messages: Array.from({ length: count }, (_, i) => ({ partition: i % partitions, value: `g-${i}` }))
  }))
  const first = new Member(topic, group, 'first')
  const second = new Member(topic, group, 'second')
  try {
    await first.start()
    await waitFor(() => first.assignment.length === partitions, 'the first member to own all 4 partitions')
    await second.start()
    await waitFor(() => {
      const a = first.assignment
      const b = second.assignment
      return a.length > 0 && b.length > 0 && new Set([...a, ...b]).size === partitions &&
        a.length + b.length === partitions
    }, 'the partitions to be split between two members')
    await waitFor(() => new Set([...first.seen, ...second.seen]).size === count,
      `the two members to consume all ${count} records`)
    await second.stop()
    await waitFor(() => first.assignment.length === partitions,
      'the first member to own all partitions after the second left')
  } finally {
    await second.stop()
    await first.stop()
  }
}

async function commitResume () {
  const topic = `${prefix}-commit`
  const groupId = `${prefix}-commit`
  await withAdmin(admin => createTopic(admin, topic, 1))
  await withProducer({}, producer => producer.send({
    topic, messages: Array.from({ length: 20 }, (_, i) => ({ value: `c-${i}` }))
  }))
  let committed
  const firstBatch = await consumeGroup(groupId, topic, 10, async (consumer, message, index) => {
    if (index === 9) {
      committed = BigInt(message.offset) + 1n
      await consumer.commitOffsets([{ topic, partition: 0, offset: committed.toString() }])
    }
  })
  assert.equal(firstBatch[9].value.toString(), 'c-9', '10th record')
  const stored = await withAdmin(admin => admin.fetchOffsets({ groupId, topics: [topic] }))
  assert.equal(stored[0].partitions[0].offset, committed.toString(), 'committed offset')
  let last
  const resumed = await consumeGroup(groupId, topic, 10, async (consumer, message, index) => {
    if (index === 9) {
      last = BigInt(message.offset) + 1n
      await consumer.commitOffsets([{ topic, partition: 0, offset: last.toString() }])
    }
  })
  assert.equal(BigInt(resumed[0].offset), committed, 'resumed at the committed offset')
  assert.deepEqual(resumed.map(m => m.value.toString()),
    Array.from({ length: 10 }, (_, i) => `c-${10 + i}`), 'resumed records')
  const final = await withAdmin(admin => admin.fetchOffsets({ groupId, topics: [topic] }))
  assert.equal(final[0].partitions[0].offset, last.toString(), 'final committed offset')
}

/** One consumer-group member; kafkajs reports each assignment with the GROUP_JOIN event. */
class Member {
  constructor (topic, groupId, name) {
    this.topic = topic
    this.assignment = []
    this.seen = new Set()
    this.stopped = false
    this.consumer = kafka.consumer({
      groupId, sessionTimeout: 10000, heartbeatInterval: 300, rebalanceTimeout: 20000,
      maxWaitTimeInMs: 200 // heartbeats go out between fetches: keep fetches short
    })
    this.consumer.on(this.consumer.events.GROUP_JOIN, event => {
      this.assignment = event.payload.memberAssignment[topic] || []
    })
    this.name = name
  }

  async start () {
    await this.consumer.connect()
    await this.consumer.subscribe({ topic: this.topic, fromBeginning: true })
    await this.consumer.run({
      autoCommit: false,
      eachMessage: async ({ message }) => { this.seen.add(message.value.toString()) }
    })
  }

  async stop () {
    if (this.stopped) return
    this.stopped = true
    await this.consumer.disconnect() // leaves the group
    this.assignment = []
  }
}

// kafkajs 2.x joins groups with JoinGroup/SyncGroup only: no group.protocol=consumer.
async function consumerProtocol () {
  throw new Skip('client does not implement KIP-848')
}

async function shareGroup () {
  throw new Skip('client has no share consumer (KIP-932)')
}

module.exports = { groupRebalance, commitResume, consumerProtocol, shareGroup }
